package pgsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	authzed "github.com/authzed/authzed-go/v1"

	"github.com/kengen/kengen/api"
)

// sink writes relationship changes to the Authzed endpoint: one call per database
// transaction, retried while the endpoint is unavailable, a refusal stopping the stream or,
// with Skip, dropping the refused change with a log line and a metric.
type sink struct {
	client     *authzed.Client
	skip       bool
	maxUpdates int
	log        *slog.Logger
	metrics    *metrics
}

// retryable are the codes a retry can fix; the rest of the failures say something is wrong
// with the change or the configuration.
var retryable = map[string]bool{"Unavailable": true, "DeadlineExceeded": true, "Aborted": true, "ResourceExhausted": true, "Unknown": true, "Canceled": true}

// refusals are the codes that mean the endpoint will never take this change.
var refusals = map[string]bool{"FailedPrecondition": true, "InvalidArgument": true, "NotFound": true, "AlreadyExists": true, "OutOfRange": true}

var updateIndex = regexp.MustCompile(`updates\[(\d+)\]`)

// write applies changes as one WriteRelationships (several when there are more than the
// endpoint takes in one call) and returns the token of the last.
func (s *sink) write(ctx context.Context, changes []change) (*v1.ZedToken, error) {
	var token *v1.ZedToken
	for len(changes) > 0 {
		n := min(len(changes), s.maxUpdates)
		if n < len(changes) {
			s.log.Warn("sync: a transaction has more relationship changes than one write takes; writing it in parts", "changes", len(changes), "max", s.maxUpdates)
		}
		chunk := changes[:n]
		changes = changes[n:]
		for len(chunk) > 0 {
			t, err := s.send(ctx, chunk)
			if err == nil {
				token = t
				break
			}
			var ref *refusal
			if !errors.As(err, &ref) {
				return nil, err
			}
			bad := culprits(chunk, ref.msg)
			if !s.skip {
				c := chunk[bad[0]]
				return nil, fmt.Errorf("%w: row %s, rule %s: %s %s: %s: %s", ErrRefused, c.row, c.rule, opName(c.op), relText(c.rel), ref.code, ref.msg)
			}
			drop := map[int]bool{}
			for _, i := range bad {
				c := chunk[i]
				drop[i] = true
				s.metrics.refused.WithLabelValues(c.rule.table).Inc()
				s.log.Error("sync: skipped a change the endpoint refused", "row", c.row, "rule", c.rule.String(), "op", opName(c.op), "relationship", relText(c.rel), "code", ref.code, "error", ref.msg)
			}
			kept := chunk[:0:0]
			for i, c := range chunk {
				if !drop[i] {
					kept = append(kept, c)
				}
			}
			chunk = kept
		}
	}
	return token, nil
}

type refusal struct{ code, msg string }

func (r *refusal) Error() string { return r.code + ": " + r.msg }

// send makes one WriteRelationships call, retrying what a retry can fix until ctx ends.
func (s *sink) send(ctx context.Context, chunk []change) (*v1.ZedToken, error) {
	req := &v1.WriteRelationshipsRequest{Updates: make([]*v1.RelationshipUpdate, len(chunk))}
	for i := range chunk {
		req.Updates[i] = chunk[i].update()
	}
	backoff := 50 * time.Millisecond
	for attempt := 0; ; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		resp, err := s.client.WriteRelationships(cctx, req)
		cancel()
		if err == nil {
			return resp.GetWrittenAt(), nil
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		code, msg, ok := api.DescribeClientError(err)
		switch {
		case ok && refusals[code]:
			return nil, &refusal{code: code, msg: msg}
		case !ok || retryable[code]:
			if attempt%20 == 0 {
				s.log.Warn("sync: the endpoint did not take a write; retrying", "attempt", attempt+1, "error", err)
			}
			s.metrics.retries.Inc()
		default:
			return nil, fmt.Errorf("pgsync: writing relationships: %s: %s", code, msg)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// culprits finds the changes a refusal's message names: by update index, by the whole
// relationship, or by its resource and relation (a relation limit names no subject). When it
// names none, the whole chunk is refused.
func culprits(chunk []change, msg string) []int {
	if m := updateIndex.FindStringSubmatch(msg); m != nil {
		if i, err := strconv.Atoi(m[1]); err == nil && i < len(chunk) {
			return []int{i}
		}
	}
	var out []int
	for i, c := range chunk {
		if strings.Contains(msg, c.key) {
			out = append(out, i)
		}
	}
	if len(out) > 0 {
		return out
	}
	for i, c := range chunk {
		res := c.rel.GetResource()
		prefix := res.GetObjectType() + ":" + res.GetObjectId() + "#" + c.rel.GetRelation()
		if c.op != v1.RelationshipUpdate_OPERATION_DELETE && containsWord(msg, prefix) {
			out = append(out, i)
		}
	}
	if len(out) > 0 {
		return out
	}
	all := make([]int, len(chunk))
	for i := range all {
		all[i] = i
	}
	return all
}

// containsWord says whether s holds w not followed by more of an identifier.
func containsWord(s, w string) bool {
	for i := 0; ; {
		j := strings.Index(s[i:], w)
		if j < 0 {
			return false
		}
		end := i + j + len(w)
		if end == len(s) || !strings.ContainsRune("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_", rune(s[end])) {
			return true
		}
		i = end
	}
}

func opName(op v1.RelationshipUpdate_Operation) string {
	if op == v1.RelationshipUpdate_OPERATION_DELETE {
		return "DELETE"
	}
	return "TOUCH"
}
