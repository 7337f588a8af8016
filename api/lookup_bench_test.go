package api

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"

	"github.com/kengen/kengen/bench/datagen"
)

// The benchmarks of the lookup, watch and bulk issue, through the authzed-go client over
// loopback gRPC against the real server and an on-disk Pebble store (NoSync). See
// docs/benchmarks.md for the commands and figures.

// crmProtos generates the CRM dataset at scale as relationship protos, and returns the users
// of the root role (who see every deal) and of the leaf roles.
func crmProtos(scale float64) (rels []*v1.Relationship, st datagen.CRMStats, rootUsers, leafUsers []string) {
	var roles int
	cfg := datagen.CRMConfig{Scale: scale, Seed: 42}
	// The role tree has branching 4 and depth 6: roles 341 .. 1364 are its leaves.
	const firstLeaf = 1 + 4 + 16 + 64 + 256
	st = datagen.CRM(cfg, func(t datagen.Tuple) {
		rels = append(rels, &v1.Relationship{
			Resource: &v1.ObjectReference{ObjectType: t.ResourceType, ObjectId: t.ResourceID},
			Relation: t.Relation,
			Subject:  subjectRef(t.SubjectType, t.SubjectID, t.SubjectRelation),
		})
		if t.ResourceType == "role" && t.Relation == "member" {
			n, _ := strconv.Atoi(strings.TrimPrefix(t.ResourceID, "r"))
			switch {
			case n == 0:
				rootUsers = append(rootUsers, t.SubjectID)
			case n >= firstLeaf:
				leafUsers = append(leafUsers, t.SubjectID)
			}
			roles = max(roles, n+1)
		}
	})
	return rels, st, rootUsers, leafUsers
}

// startCRM starts a server and imports the CRM dataset at scale into it.
func startCRM(b *testing.B, scale float64) (*testEnv, datagen.CRMStats, []string, []string) {
	rels, st, root, leaf := crmProtos(scale)
	env := startServer(b, Options{})
	env.writeSchema(datagen.CRMSchema)
	importProtos(b, env, rels)
	settle(b, env)
	return env, st, root, leaf
}

// settle flushes the memtable and waits (up to two minutes) for Pebble's compactions to
// finish, so that a benchmark after a large import measures reads, not the compactions the
// import left behind.
func settle(b *testing.B, env *testEnv) {
	if err := env.st.Flush(); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for time.Now().Before(deadline) {
		m, err := env.st.Metrics()
		if err != nil {
			b.Fatal(err)
		}
		if m.CompactionsInProgress == 0 && m.CompactionDebtBytes == 0 {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.Logf("compactions still running after two minutes; measuring anyway")
}

// lookupCount streams a whole unpaged deal#view listing for user:subject and returns how
// many deals it held.
func lookupCount(ctx context.Context, env *testEnv, subject string) (int, error) {
	stream, err := env.client.LookupResources(ctx, &v1.LookupResourcesRequest{
		Consistency: full(), ResourceObjectType: "deal", Permission: "view", Subject: subjectRef("user", subject, ""),
	})
	if err != nil {
		return 0, err
	}
	n := 0
	for {
		_, err := stream.Recv()
		if errors.Is(err, io.EOF) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
		n++
	}
}

// BenchmarkLookupResourcesCRM lists deal#view, unpaged and streamed to the client, on the CRM
// dataset at scale 1 (150,000 deals, about 790,000 relationships), for a member of the root
// role (who sees every deal) and for the leaf-role user among the first 50 who sees the
// fewest. cold bumps the revision before each lookup (a write, outside the timer), so the
// reverse walk and every check start with empty caches; warm repeats the lookup at one
// revision, as the pages of one listing do. ns/op is one whole listing; deals/op its size.
//
//	go test -run XXX -bench LookupResourcesCRM -benchtime 5x -count 3 ./api
func BenchmarkLookupResourcesCRM(b *testing.B) {
	env, st, root, leaf := startCRM(b, 1)
	ctx := context.Background()
	if st.Deals < 150_000 || len(root) == 0 || len(leaf) == 0 {
		b.Fatalf("dataset: %d deals, %d root users, %d leaf users", st.Deals, len(root), len(leaf))
	}
	// Pick the leaf user who sees the fewest deals among the first 50.
	fewest, fewestN := "", 0
	for _, u := range leaf[:min(50, len(leaf))] {
		n, err := lookupCount(ctx, env, u)
		if err != nil {
			b.Fatal(err)
		}
		if fewest == "" || n < fewestN {
			fewest, fewestN = u, n
		}
	}
	bump := 0
	for _, user := range []struct{ name, id string }{{"root", root[0]}, {"leaf", fewest}} {
		for _, cold := range []bool{true, false} {
			name := user.name + "/warm"
			if cold {
				name = user.name + "/cold"
			}
			b.Run(name, func(b *testing.B) {
				b.ReportAllocs()
				n := 0
				for range b.N {
					if cold {
						b.StopTimer()
						bump++
						env.touch(fmt.Sprintf("deal:bench-bump-%d#owner@user:nobody", bump))
						b.StartTimer()
					}
					var err error
					if n, err = lookupCount(ctx, env, user.id); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(n), "deals/op")
			})
		}
	}
}

// BenchmarkWatchLag measures Watch delivery under a write load: 4 writers each write one
// relationship per WriteRelationships call, as fast as the server acknowledges, while one
// Watch stream is open. The lag of a write is the time from its acknowledgement reaching
// the writer to its change arriving on the stream (0 when the change arrived first);
// p50-lag-ms and p99-lag-ms are over every write of the run. ns/op is per write.
//
//	go test -run XXX -bench WatchLag -benchtime 2000x -count 3 ./api
func BenchmarkWatchLag(b *testing.B) {
	env := startServer(b, Options{})
	env.writeSchema(datagen.CRMSchema)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	run := 0
	b.Run("writers=4", func(b *testing.B) {
		run++
		prefix := fmt.Sprintf("w%d-", run)
		acked := make([]atomic.Int64, b.N)
		arrived := make([]atomic.Int64, b.N)
		var received atomic.Int64
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		stream, err := env.client.Watch(wctx, &v1.WatchRequest{OptionalObjectTypes: []string{"deal"}})
		if err != nil {
			b.Fatal(err)
		}
		watchDone := make(chan error, 1)
		go func() {
			for {
				resp, err := stream.Recv()
				if err != nil {
					watchDone <- err
					return
				}
				now := time.Now().UnixNano()
				for _, u := range resp.GetUpdates() {
					id := u.GetRelationship().GetResource().GetObjectId()
					if i, err := strconv.Atoi(strings.TrimPrefix(id, prefix)); err == nil && strings.HasPrefix(id, prefix) && i < len(arrived) {
						arrived[i].Store(now)
						received.Add(1)
					}
				}
			}
		}()
		// The Watch starts from the revision applied when the call arrives: write one
		// relationship and wait for it, so that no measured write precedes the stream.
		env.touch("deal:watch-ready#owner@user:nobody")
		time.Sleep(50 * time.Millisecond)

		var next atomic.Int64
		var failed atomic.Value
		var wg sync.WaitGroup
		b.ResetTimer()
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					i := int(next.Add(1)) - 1
					if i >= b.N {
						return
					}
					_, err := env.client.WriteRelationships(ctx, &v1.WriteRelationshipsRequest{Updates: []*v1.RelationshipUpdate{
						update(b, v1.RelationshipUpdate_OPERATION_TOUCH, fmt.Sprintf("deal:%s%d#owner@user:u%d", prefix, i, i%100)),
					}})
					if err != nil {
						failed.Store(err)
						return
					}
					acked[i].Store(time.Now().UnixNano())
				}
			}()
		}
		wg.Wait()
		b.StopTimer()
		if err, _ := failed.Load().(error); err != nil {
			b.Fatal(err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for received.Load() < int64(b.N) && time.Now().Before(deadline) {
			time.Sleep(5 * time.Millisecond)
		}
		stop()
		if err := <-watchDone; err != nil && wctx.Err() == nil {
			b.Fatalf("Watch: %v", err)
		}
		if got := received.Load(); got != int64(b.N) {
			b.Fatalf("Watch delivered %d of %d writes within 30 s", got, b.N)
		}
		lags := make([]time.Duration, b.N)
		for i := range lags {
			lags[i] = max(0, time.Duration(arrived[i].Load()-acked[i].Load()))
		}
		slices.Sort(lags)
		b.ReportMetric(float64(lags[len(lags)/2])/1e6, "p50-lag-ms")
		b.ReportMetric(float64(lags[len(lags)*99/100])/1e6, "p99-lag-ms")
	})
}

// BenchmarkImportCRM imports the CRM dataset at scale 1.27 (just over 1,000,000
// relationships) into an empty store with one ImportBulkRelationships stream of 1,000
// relationships a message, and reports relationships a second. The protos are built before
// the timer starts; the server and store are new for each import.
//
//	go test -run XXX -bench ImportCRM -benchtime 1x -count 3 ./api
func BenchmarkImportCRM(b *testing.B) {
	rels, _, _, _ := crmProtos(1.27)
	if len(rels) < 1_000_000 {
		b.Fatalf("dataset holds %d relationships, want at least 1,000,000", len(rels))
	}
	b.ResetTimer()
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		env := startServer(b, Options{})
		env.writeSchema(datagen.CRMSchema)
		b.StartTimer()
		start := time.Now()
		importProtos(b, env, rels)
		elapsed += time.Since(start)
	}
	b.ReportMetric(float64(len(rels)), "rels/op")
	b.ReportMetric(float64(len(rels))*float64(b.N)/elapsed.Seconds(), "rels/s")
}
