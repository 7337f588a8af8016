package main

import (
	"errors"
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/kengen/kengen/check/validation"
	"github.com/kengen/kengen/schema"
)

func newValidateCmd(c *cli) *cobra.Command {
	return &cobra.Command{
		Use:   "validate FILE...",
		Short: "Run validation files (zed's format) in-process, without a server",
		Long: `Run validation files in the format 'zed validate' reads: a schema (or schemaFile),
relationships, assertions (assertTrue, assertFalse, assertCaveated) and expected relations
(validation:). Each document runs on a fresh in-memory store; no server is involved.

A schema (inline or in the schemaFile) that imports other files (use import, import
"file.zed") is composed from the files relative to its own directory first, as zed does.

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
				if err := composeDocuments(c, path, f, total); err != nil {
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

// composeDocuments composes the schema of each document of f that imports files, relative to
// the directory of its schemaFile or of the validation file at path. A document whose
// composition fails is reported (each error as FILE:LINE:COLUMN: message), counted as failed
// in total and left out of the run.
func composeDocuments(c *cli, path string, f *validation.File, total *validation.Report) error {
	kept := f.Docs[:0]
	for _, doc := range f.Docs {
		dir, name := filepath.Dir(path), filepath.Base(path)
		if doc.SchemaFile != "" {
			dir, name = filepath.Dir(doc.SchemaFile), filepath.Base(doc.SchemaFile)
		}
		text, err := composeSchema(dir, name, doc.Schema)
		if err == nil {
			doc.Schema = text
			kept = append(kept, doc)
			continue
		}
		var list schema.ErrorList
		if !errors.As(err, &list) {
			return fmt.Errorf("composing the schema of %s: %w", path, err)
		}
		for _, e := range list {
			at := e.Pos
			if doc.SchemaFile == "" && at.File == name {
				// The inline schema: its lines start at the document's schema: line.
				at.File, at.Line = path, at.Line+doc.SchemaPos-1
			} else if at.File != "" {
				at.File = filepath.Join(dir, at.File)
			}
			if _, err := fmt.Fprintf(c.stdout, "%s: %s\n", at, e.Msg); err != nil {
				return err
			}
		}
		total.Failed++
	}
	f.Docs = kept
	return nil
}
