package main

import (
	"errors"
	"fmt"
	"time"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

func newRelationshipCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:     "relationship",
		Aliases: []string{"rel"},
		Short:   "Write, delete or read relationships",
	}
	for _, w := range []struct {
		verb  string
		op    v1.RelationshipUpdate_Operation
		short string
	}{
		{"create", v1.RelationshipUpdate_OPERATION_CREATE, "Create a relationship; fails if it exists"},
		{"touch", v1.RelationshipUpdate_OPERATION_TOUCH, "Create a relationship, or update its caveat and expiration"},
		{"delete", v1.RelationshipUpdate_OPERATION_DELETE, "Delete a relationship; deleting an absent one is not an error"},
	} {
		cmd.AddCommand(newWriteCmd(c, w.verb, w.op, w.short))
	}
	cmd.AddCommand(newReadCmd(c))
	return cmd
}

func newWriteCmd(c *cli, verb string, op v1.RelationshipUpdate_Operation, short string) *cobra.Command {
	var caveat, caveatContext, expiresAt string
	cmd := &cobra.Command{
		Use:     verb + " RESOURCE RELATION SUBJECT",
		Short:   short,
		Example: "  kengen relationship " + verb + " deal:1 owner user:sato\n  kengen relationship " + verb + " deal:1 follower group:eng#member",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := parseObject("resource", args[0])
			if err != nil {
				return err
			}
			sub, err := parseSubject(args[2])
			if err != nil {
				return err
			}
			r := &v1.Relationship{Resource: res, Relation: args[1], Subject: sub}
			if caveat != "" {
				r.OptionalCaveat = &v1.ContextualizedCaveat{CaveatName: caveat}
				if caveatContext != "" {
					ctx := &structpb.Struct{}
					if err := ctx.UnmarshalJSON([]byte(caveatContext)); err != nil {
						return fmt.Errorf("--caveat-context: want a JSON object: %w", err)
					}
					r.OptionalCaveat.Context = ctx
				}
			} else if caveatContext != "" {
				return errors.New("--caveat-context needs --caveat NAME")
			}
			if expiresAt != "" {
				t, err := time.Parse(time.RFC3339, expiresAt)
				if err != nil {
					return fmt.Errorf("--expires-at: want RFC 3339, e.g. 2030-01-01T00:00:00Z: %w", err)
				}
				r.OptionalExpiresAt = timestamppb.New(t)
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			resp, err := client.WriteRelationships(cmd.Context(), &v1.WriteRelationshipsRequest{
				Updates: []*v1.RelationshipUpdate{{Operation: op, Relationship: r}},
			})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(resp)
			}
			_, err = fmt.Fprintf(c.stdout, "%s %s at %s\n", pastTense[verb], formatRelationship(r), resp.GetWrittenAt().GetToken())
			return err
		},
	}
	if op == v1.RelationshipUpdate_OPERATION_DELETE {
		// A delete names the relationship by resource, relation and subject alone: its caveat
		// and expiration play no part, so the flags that set them are not offered.
		return cmd
	}
	cmd.Flags().StringVar(&caveat, "caveat", "", "name of the caveat that conditions the relationship")
	cmd.Flags().StringVar(&caveatContext, "caveat-context", "", "JSON object: the caveat context stored with the relationship")
	cmd.Flags().StringVar(&expiresAt, "expires-at", "", "RFC 3339 time at which the relationship stops counting")
	return cmd
}

var pastTense = map[string]string{"create": "created", "touch": "touched", "delete": "deleted"}

func newReadCmd(c *cli) *cobra.Command {
	var limit uint32
	cmd := &cobra.Command{
		Use:   "read FILTER [SUBJECT-FILTER]",
		Short: "List the relationships a filter matches",
		Example: `  kengen relationship read deal            every relationship of every deal
  kengen relationship read deal:1#owner
  kengen relationship read deal user:sato  the deals that name user:sato`,
		Args: cobra.RangeArgs(1, 2),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := parseFilter(args[0])
			if err != nil {
				return err
			}
			if len(args) == 2 {
				if f.OptionalSubjectFilter, err = parseSubjectFilter(args[1]); err != nil {
					return err
				}
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			stream, err := client.ReadRelationships(cmd.Context(), &v1.ReadRelationshipsRequest{
				Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
				RelationshipFilter: f,
				OptionalLimit:      limit,
			})
			if err != nil {
				return err
			}
			return printStream(c, stream.Recv, func(resp *v1.ReadRelationshipsResponse) []string {
				return []string{formatRelationship(resp.GetRelationship())}
			})
		},
	}
	cmd.Flags().Uint32Var(&limit, "limit", 0, "print at most this many (0: all)")
	return cmd
}
