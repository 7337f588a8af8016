package api

import (
	"context"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// ReadSchema returns the schema text in force at the latest revision.
func (s schemaService) ReadSchema(ctx context.Context, req *v1.ReadSchemaRequest) (*v1.ReadSchemaResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	rev := s.st.Revision()
	sch, text, _ := s.st.Schema()
	if sch == nil && text == "" {
		return nil, fmt.Errorf("%w: no schema has been written; write one with WriteSchema", errNotFound)
	}
	return &v1.ReadSchemaResponse{SchemaText: text, ReadAt: encodeZedToken(rev)}, nil
}

// WriteSchema replaces the schema. A schema with errors is refused with every error and its
// line:column; a change that would strand stored relationships is refused naming them.
func (s schemaService) WriteSchema(ctx context.Context, req *v1.WriteSchemaRequest) (*v1.WriteSchemaResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	rev, err := s.writer.WriteSchema(ctx, req.GetSchema())
	if err != nil {
		return nil, err
	}
	return &v1.WriteSchemaResponse{WrittenAt: encodeZedToken(rev)}, nil
}
