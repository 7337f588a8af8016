package api

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/check/validation"
)

// BenchmarkCheckPermission measures CheckPermission through the authzed-go client over
// loopback gRPC, on the ProSales seed model, with 1 and 8 concurrent callers cycling through
// the model's assertions. ns/op is wall time per check across all callers (the inverse of
// throughput).
//
//	go test -run XXX -bench CheckPermission -benchmem ./api
func BenchmarkCheckPermission(b *testing.B) {
	env, doc := prosalesEnv(b)
	var reqs []*v1.CheckPermissionRequest
	for _, a := range doc.Assertions {
		reqs = append(reqs, checkRequestToProto(b, a.Request))
	}
	// No deadline: a benchmark run with -count and -benchtime may last longer than ctxT's.
	ctx := context.Background()

	for _, callers := range []int{1, 8} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			b.ReportAllocs()
			var (
				next   atomic.Int64
				failed atomic.Value
				wg     sync.WaitGroup
			)
			b.ResetTimer()
			for range callers {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := env.client.CheckPermission(ctx, reqs[int(i)%len(reqs)]); err != nil {
							failed.Store(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			if err, _ := failed.Load().(error); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// prosalesEnv starts a server holding the ProSales seed model and returns it with the model's
// validation document (its assertions are the benchmarks' questions).
func prosalesEnv(b *testing.B) (*testEnv, *validation.Document) {
	f, err := validation.Load("../schema/examples/prosales.yaml")
	if err != nil {
		b.Fatal(err)
	}
	doc := f.Docs[0]
	env := startServer(b, Options{})
	env.writeSchema(doc.Schema)
	var rels []string
	for _, r := range doc.Relationships {
		rels = append(rels, r.Value.String())
	}
	env.touch(rels...)
	return env, doc
}
