package main

import (
	"fmt"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"
)

func newLookupCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "lookup",
		Short: "List the resources a subject may reach, or the subjects that may reach a resource",
	}
	var context string
	parseContext := func() (*structpb.Struct, error) {
		if context == "" {
			return nil, nil
		}
		s := &structpb.Struct{}
		if err := s.UnmarshalJSON([]byte(context)); err != nil {
			return nil, fmt.Errorf("--context: want a JSON object: %w", err)
		}
		return s, nil
	}
	resources := &cobra.Command{
		Use:     "resources TYPE PERMISSION SUBJECT",
		Short:   "Every resource of TYPE on which SUBJECT has PERMISSION (LookupResources)",
		Example: "  kengen lookup resources deal view user:sato",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			sub, err := parseSubject(args[2])
			if err != nil {
				return err
			}
			ctx, err := parseContext()
			if err != nil {
				return err
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			stream, err := client.LookupResources(cmd.Context(), &v1.LookupResourcesRequest{
				Consistency:        &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
				ResourceObjectType: args[0], Permission: args[1], Subject: sub, Context: ctx,
			})
			if err != nil {
				return err
			}
			return printStream(c, stream.Recv, func(resp *v1.LookupResourcesResponse) []string {
				return []string{args[0] + ":" + resp.GetResourceObjectId() + conditional(resp.GetPartialCaveatInfo())}
			})
		},
	}
	subjects := &cobra.Command{
		Use:     "subjects RESOURCE PERMISSION SUBJECT_TYPE[#RELATION]",
		Short:   "Every subject of SUBJECT_TYPE that has PERMISSION on RESOURCE (LookupSubjects)",
		Example: "  kengen lookup subjects deal:1 view user\n  kengen lookup subjects deal:1 view group#member",
		Args:    cobra.ExactArgs(3),
		RunE: func(cmd *cobra.Command, args []string) error {
			res, err := parseObject("resource", args[0])
			if err != nil {
				return err
			}
			typ, rel, _ := strings.Cut(args[2], "#")
			ctx, err := parseContext()
			if err != nil {
				return err
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			stream, err := client.LookupSubjects(cmd.Context(), &v1.LookupSubjectsRequest{
				Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}},
				Resource:    res, Permission: args[1], SubjectObjectType: typ, OptionalSubjectRelation: rel, Context: ctx,
			})
			if err != nil {
				return err
			}
			return printStream(c, stream.Recv, func(resp *v1.LookupSubjectsResponse) []string {
				s := resp.GetSubject()
				line := typ + ":" + s.GetSubjectObjectId()
				if rel != "" {
					line += "#" + rel
				}
				if ex := resp.GetExcludedSubjects(); len(ex) > 0 {
					ids := make([]string, len(ex))
					for i, e := range ex {
						ids[i] = typ + ":" + e.GetSubjectObjectId()
					}
					line += " - {" + strings.Join(ids, ", ") + "}"
				}
				return []string{line + conditional(s.GetPartialCaveatInfo())}
			})
		},
	}
	for _, sub := range []*cobra.Command{resources, subjects} {
		sub.Flags().StringVar(&context, "context", "", "JSON object: caveat context for the lookup")
		cmd.AddCommand(sub)
	}
	return cmd
}

// conditional marks a result that depends on caveat context the lookup did not give.
func conditional(p *v1.PartialCaveatInfo) string {
	if p == nil {
		return ""
	}
	return " (conditional, missing " + strings.Join(p.GetMissingRequiredContext(), ", ") + ")"
}
