package api

import (
	"context"
	"fmt"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
)

// ReadSchema returns the schema text in force at the latest revision: as it was written, unless
// it wrote a relation limit in kengen's keyword form (`limit 5`), which SpiceDB's parser refuses.
// Then it returns the generated text, where each limit is a `kengen:limit 5` doc comment line,
// so that SpiceDB's tools (zed reads the current schema before it writes one) can parse every
// schema kengen returns.
func (s schemaService) ReadSchema(ctx context.Context, req *v1.ReadSchemaRequest) (*v1.ReadSchemaResponse, error) {
	if err := validate(req); err != nil {
		return nil, err
	}
	rev := s.st.Revision()
	sch, text, _ := s.st.Schema()
	if sch == nil && text == "" {
		return nil, fmt.Errorf("%w: no schema has been written; write one with WriteSchema", errNotFound)
	}
	if sch != nil && sch.KeywordLimits {
		text = sch.Generate()
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
