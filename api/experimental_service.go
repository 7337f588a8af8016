package api

import (
	"context"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/kengen/kengen/store"
)

// experimentalService serves the ExperimentalService RPCs that are deprecated aliases of
// stable ones: older clients (and zed releases) still call BulkImportRelationships,
// BulkExportRelationships, BulkCheckPermission and ExperimentalReflectSchema, whose messages
// SpiceDB moved to PermissionsService (ImportBulkRelationships, ExportBulkRelationships,
// CheckBulkPermissions) and SchemaService (ReflectSchema) without changing a field number. Each alias converts its messages to
// the stable ones through their wire form and runs the stable handler, so the two can never
// answer differently.
type experimentalService struct {
	v1.UnimplementedExperimentalServiceServer
	ps permissionsService
	ss schemaService
}

// convert copies the fields of from into to, which must have the same field numbers and types.
func convert[T proto.Message](from proto.Message, to T) (T, error) {
	b, err := proto.Marshal(from)
	if err != nil {
		return to, fmt.Errorf("api: converting %T: %w", from, err)
	}
	if err := proto.Unmarshal(b, to); err != nil {
		return to, fmt.Errorf("api: converting %T to %T: %w", from, to, err)
	}
	return to, nil
}

// BulkCheckPermission is CheckBulkPermissions under its experimental name.
func (s experimentalService) BulkCheckPermission(ctx context.Context, req *v1.BulkCheckPermissionRequest) (*v1.BulkCheckPermissionResponse, error) {
	stable, err := convert(req, &v1.CheckBulkPermissionsRequest{})
	if err != nil {
		return nil, err
	}
	resp, err := s.ps.CheckBulkPermissions(ctx, stable)
	if err != nil {
		return nil, err
	}
	return convert(resp, &v1.BulkCheckPermissionResponse{})
}

// ExperimentalReflectSchema is ReflectSchema under its experimental name.
func (s experimentalService) ExperimentalReflectSchema(ctx context.Context, req *v1.ExperimentalReflectSchemaRequest) (*v1.ExperimentalReflectSchemaResponse, error) {
	stable, err := convert(req, &v1.ReflectSchemaRequest{})
	if err != nil {
		return nil, err
	}
	resp, err := s.ss.ReflectSchema(ctx, stable)
	if err != nil {
		return nil, err
	}
	return convert(resp, &v1.ExperimentalReflectSchemaResponse{})
}

// BulkImportRelationships is ImportBulkRelationships under its experimental name.
func (s experimentalService) BulkImportRelationships(stream v1.ExperimentalService_BulkImportRelationshipsServer) error {
	return s.ps.ImportBulkRelationships(importStream{stream})
}

// BulkExportRelationships is ExportBulkRelationships under its experimental name.
func (s experimentalService) BulkExportRelationships(req *v1.BulkExportRelationshipsRequest, stream v1.ExperimentalService_BulkExportRelationshipsServer) error {
	stable, err := convert(req, &v1.ExportBulkRelationshipsRequest{})
	if err != nil {
		return err
	}
	return s.ps.ExportBulkRelationships(stable, exportStream{stream})
}

// importStream is an experimental import stream seen as a stable one.
type importStream struct {
	v1.ExperimentalService_BulkImportRelationshipsServer
}

var _ grpc.ClientStreamingServer[v1.ImportBulkRelationshipsRequest, v1.ImportBulkRelationshipsResponse] = importStream{}

func (s importStream) Recv() (*v1.ImportBulkRelationshipsRequest, error) {
	req, err := s.ExperimentalService_BulkImportRelationshipsServer.Recv()
	if err != nil {
		return nil, err
	}
	return convert(req, &v1.ImportBulkRelationshipsRequest{})
}

func (s importStream) SendAndClose(resp *v1.ImportBulkRelationshipsResponse) error {
	old, err := convert(resp, &v1.BulkImportRelationshipsResponse{})
	if err != nil {
		return err
	}
	return s.ExperimentalService_BulkImportRelationshipsServer.SendAndClose(old)
}

// exportStream is an experimental export stream seen as a stable one.
type exportStream struct {
	v1.ExperimentalService_BulkExportRelationshipsServer
}

var _ grpc.ServerStreamingServer[v1.ExportBulkRelationshipsResponse] = exportStream{}

func (s exportStream) Send(resp *v1.ExportBulkRelationshipsResponse) error {
	old, err := convert(resp, &v1.BulkExportRelationshipsResponse{})
	if err != nil {
		return err
	}
	return s.ExperimentalService_BulkExportRelationshipsServer.Send(old)
}

// ExperimentalDiffSchema is DiffSchema under its experimental name.
func (s experimentalService) ExperimentalDiffSchema(ctx context.Context, req *v1.ExperimentalDiffSchemaRequest) (*v1.ExperimentalDiffSchemaResponse, error) {
	stable, err := convert(req, &v1.DiffSchemaRequest{})
	if err != nil {
		return nil, err
	}
	resp, err := s.ss.DiffSchema(ctx, stable)
	if err != nil {
		return nil, err
	}
	return convert(resp, &v1.ExperimentalDiffSchemaResponse{})
}

// ExperimentalComputablePermissions is ComputablePermissions under its experimental name.
func (s experimentalService) ExperimentalComputablePermissions(ctx context.Context, req *v1.ExperimentalComputablePermissionsRequest) (*v1.ExperimentalComputablePermissionsResponse, error) {
	stable, err := convert(req, &v1.ComputablePermissionsRequest{})
	if err != nil {
		return nil, err
	}
	resp, err := s.ss.ComputablePermissions(ctx, stable)
	if err != nil {
		return nil, err
	}
	return convert(resp, &v1.ExperimentalComputablePermissionsResponse{})
}

// ExperimentalDependentRelations is DependentRelations under its experimental name.
func (s experimentalService) ExperimentalDependentRelations(ctx context.Context, req *v1.ExperimentalDependentRelationsRequest) (*v1.ExperimentalDependentRelationsResponse, error) {
	stable, err := convert(req, &v1.DependentRelationsRequest{})
	if err != nil {
		return nil, err
	}
	resp, err := s.ss.DependentRelations(ctx, stable)
	if err != nil {
		return nil, err
	}
	return convert(resp, &v1.ExperimentalDependentRelationsResponse{})
}

// ExperimentalRegisterRelationshipCounter registers a counter of the relationships the filter
// matches under the name, through the log like any write, so every node keeps the same count
// from the revision it was registered at. A name in use is refused (FAILED_PRECONDITION), as
// SpiceDB refuses it; unregister it first.
func (s experimentalService) ExperimentalRegisterRelationshipCounter(ctx context.Context, req *v1.ExperimentalRegisterRelationshipCounterRequest) (*v1.ExperimentalRegisterRelationshipCounterResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	if req.GetName() == "" {
		return nil, invalidf("name: is required; name the counter")
	}
	f, err := filterFromProto("relationship_filter", req.GetRelationshipFilter(), true)
	if err != nil {
		return nil, err
	}
	if _, err := s.ps.writer.Apply(ctx, &store.Batch{Counter: &store.CounterChange{Name: req.GetName(), Filter: &f}}); err != nil {
		return nil, err
	}
	return &v1.ExperimentalRegisterRelationshipCounterResponse{}, nil
}

// ExperimentalUnregisterRelationshipCounter removes a counter; a name not registered is
// refused (FAILED_PRECONDITION).
func (s experimentalService) ExperimentalUnregisterRelationshipCounter(ctx context.Context, req *v1.ExperimentalUnregisterRelationshipCounterRequest) (*v1.ExperimentalUnregisterRelationshipCounterResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	if req.GetName() == "" {
		return nil, invalidf("name: is required; name the counter")
	}
	if _, err := s.ps.writer.Apply(ctx, &store.Batch{Counter: &store.CounterChange{Name: req.GetName()}}); err != nil {
		return nil, err
	}
	return &v1.ExperimentalUnregisterRelationshipCounterResponse{}, nil
}

// ExperimentalCountRelationships answers a counter's count at the latest revision, as SpiceDB
// does (the request names no consistency): fully consistent here, so a count read after a
// write sees it. The count is kept exact by every write (store/counters.go) and is always
// ready: the response is never "still calculating". A name not registered is refused
// (FAILED_PRECONDITION).
func (s experimentalService) ExperimentalCountRelationships(ctx context.Context, req *v1.ExperimentalCountRelationshipsRequest) (*v1.ExperimentalCountRelationshipsResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	if req.GetName() == "" {
		return nil, invalidf("name: is required; name the counter")
	}
	rd, rev, err := s.ps.snapshotCtx(ctx, &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}})
	if err != nil {
		return nil, err
	}
	defer rd.Close()
	n, err := rd.CountRelationships(req.GetName())
	if err != nil {
		return nil, err
	}
	return &v1.ExperimentalCountRelationshipsResponse{
		CounterResult: &v1.ExperimentalCountRelationshipsResponse_ReadCounterValue{
			ReadCounterValue: &v1.ReadCounterValue{RelationshipCount: uint64(n), ReadAt: encodeZedToken(rev)},
		},
	}, nil
}
