package main

import (
	"fmt"
	"io"
	"os"
	"path/filepath"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"

	"github.com/kengen/kengen/check/validation"
	"github.com/kengen/kengen/schema"
)

func newSchemaCmd(c *cli) *cobra.Command {
	cmd := &cobra.Command{Use: "schema", Short: "Read or write the schema"}
	cmd.AddCommand(&cobra.Command{
		Use:   "write FILE",
		Short: "Replace the schema with the one in FILE (- for standard input)",
		Long: `Replace the schema with the one in FILE (- for standard input). A .yaml or .yml FILE
is read as a validation file (like the seed models in schema/examples) and its schema: is
written.

A schema that imports other files (use import, import "file.zed") is composed here, from the
files relative to FILE's directory (the current directory for standard input), and the server
is sent the composed schema: one text with the imported definitions and the partials expanded,
which is what schema read returns. A schema without imports is sent as written.`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			text, err := readSchemaFile(c, args[0])
			if err != nil {
				return err
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			resp, err := client.WriteSchema(cmd.Context(), &v1.WriteSchemaRequest{Schema: text})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(resp)
			}
			_, err = fmt.Fprintf(c.stdout, "schema written at %s\n", resp.GetWrittenAt().GetToken())
			return err
		},
	})
	cmd.AddCommand(&cobra.Command{
		Use:   "read",
		Short: "Print the schema",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			resp, err := client.ReadSchema(cmd.Context(), &v1.ReadSchemaRequest{})
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(resp)
			}
			text := resp.GetSchemaText()
			if len(text) > 0 && text[len(text)-1] != '\n' {
				text += "\n"
			}
			_, err = io.WriteString(c.stdout, text)
			return err
		},
	})
	return cmd
}

// readInput reads a file, or standard input for "-".
func readInput(c *cli, path string) (string, error) {
	if path == "-" {
		b, err := io.ReadAll(c.stdin)
		return string(b), err
	}
	b, err := os.ReadFile(path)
	return string(b), err
}

// readSchemaFile reads a schema, taking it from the `schema:` of a validation file, and
// composes it with the files it imports.
func readSchemaFile(c *cli, path string) (string, error) {
	text, err := readInput(c, path)
	if err != nil {
		return "", err
	}
	if ext := filepath.Ext(path); ext != ".yaml" && ext != ".yml" {
		if path == "-" {
			return composeSchema(".", "-", text)
		}
		return composeSchema(filepath.Dir(path), filepath.Base(path), text)
	}
	f, err := validation.Parse(path, []byte(text))
	if err != nil {
		return "", err
	}
	if len(f.Docs) == 0 || f.Docs[0].Schema == "" {
		return "", fmt.Errorf("%s has no schema: key", path)
	}
	doc := f.Docs[0]
	if doc.SchemaFile != "" {
		return composeSchema(filepath.Dir(doc.SchemaFile), filepath.Base(doc.SchemaFile), doc.Schema)
	}
	return composeSchema(filepath.Dir(path), filepath.Base(path), doc.Schema)
}

// composeSchema resolves the imports of text, the schema file name in dir, from the files
// there; text without imports comes back unchanged. Errors name the file, line and column.
func composeSchema(dir, name, text string) (string, error) {
	return schema.Compose(os.DirFS(dir), name, text)
}
