package main

import (
	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
)

func newExportCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "export [FILTER]",
		Short: "Print every relationship at one revision (ExportBulkRelationships)",
		Long: `Print every relationship, or those FILTER (deal, deal:1, deal:1#owner) matches, one per
line in the form 'kengen import' reads, all at one revision. With --json each line is one
ExportBulkRelationships response.`,
		Example: `  kengen export > backup.txt
  kengen export deal`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			req := &v1.ExportBulkRelationshipsRequest{Consistency: &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}}
			if len(args) == 1 {
				f, err := parseFilter(args[0])
				if err != nil {
					return err
				}
				req.OptionalRelationshipFilter = f
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			stream, err := client.ExportBulkRelationships(cmd.Context(), req)
			if err != nil {
				return err
			}
			return printStream(c, stream.Recv, func(resp *v1.ExportBulkRelationshipsResponse) []string {
				lines := make([]string, len(resp.GetRelationships()))
				for i, r := range resp.GetRelationships() {
					lines[i] = formatRelationship(r)
				}
				return lines
			})
		},
	}
}
