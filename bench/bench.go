// Package bench is a load driver for any endpoint that speaks the Authzed v1 API: it loads a
// generated dataset (WriteSchema, then ImportBulkRelationships or WriteRelationships batches)
// and runs a mix of checks, bulk checks, lookups and writes at a given concurrency for a given
// time or count, reporting throughput, latency percentiles and errors.
//
// Correctness travels with speed: a Dataset knows which answers must be true (a deal's owner
// may view it, user:boss sees every role of a chain) and every run counts the answers that
// disagree, with a few examples.
//
// The front door is NewDataset, Load, Count and Run; ParseMix reads a mix such as
// "check=90,write=10".
package bench

import (
	"context"
	"errors"

	authzed "github.com/authzed/authzed-go/v1"
)

// Errors of the driver, wrapped with the details.
var (
	// ErrDataset is a dataset name or size the driver does not know.
	ErrDataset = errors.New("bench: unknown or invalid dataset")
	// ErrMix is a mix that does not parse.
	ErrMix = errors.New("bench: invalid mix")
	// ErrLoad is a load the server refused or did not complete.
	ErrLoad = errors.New("bench: load failed")
	// ErrOptions is a run option out of range.
	ErrOptions = errors.New("bench: invalid option")
)

// Load writes the dataset's schema and then its relationships to the endpoint.
func Load(ctx context.Context, client *authzed.Client, ds *Dataset, opts LoadOptions) (LoadResult, error) {
	return load(ctx, client, ds, opts)
}

// Count reads back how many relationships the endpoint holds (ExportBulkRelationships).
func Count(ctx context.Context, client *authzed.Client) (int, error) {
	return count(ctx, client)
}

// Run drives the mix against the endpoint, which must hold the dataset, and reports.
func Run(ctx context.Context, client *authzed.Client, ds *Dataset, opts RunOptions) (*Report, error) {
	return run(ctx, client, ds, opts)
}
