package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/kengen/kengen/check/validation"
)

func newValidateCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Run validation files (zed's format) in-process, without a server",
		Long: `Run validation files in the format 'zed validate' reads: a schema (or schemaFile),
relationships, assertions (assertTrue, assertFalse, assertCaveated) and expected relations
(validation:). Each document runs on a fresh in-memory store; no server is involved.

Every failure is printed as FILE:LINE: what failed, then one tally line. The exit code is 0
when everything passed, 1 when anything failed or a file could not be read.`,
		Example: `  kengen validate crm.yaml
  kengen validate testdata/*.yaml`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			total := &validation.Report{}
			for _, path := range args {
				f, err := validation.Load(path)
				if err != nil {
					return err
				}
				rep, err := validation.Run(cmd.Context(), f, validation.RunOptions{})
				if err != nil {
					return fmt.Errorf("running %s: %w", path, err)
				}
				for _, fl := range rep.Failures {
					line := fl.String()
					if fl.Want != "" {
						line += "; want " + fl.Want
					}
					if _, err := fmt.Fprintln(c.stdout, line); err != nil {
						return err
					}
				}
				total.Merge(rep)
			}
			if _, err := fmt.Fprintln(c.stdout, total.TallyLine()); err != nil {
				return err
			}
			if total.Failed > 0 {
				return exitCode(exitError)
			}
			return nil
		},
	}
}
