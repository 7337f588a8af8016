package schema_test

import (
	"os"
	"strings"
	"testing"

	"github.com/kengen/kengen/schema"
)

// TestReadmeSchemas parses and type-checks every ```zed block of the README, so the schema a
// new user copies from it is one kengen accepts.
func TestReadmeSchemas(t *testing.T) {
	doc, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	rest, blocks := string(doc), 0
	for {
		_, after, found := strings.Cut(rest, "```zed\n")
		if !found {
			break
		}
		var block string
		block, rest, _ = strings.Cut(after, "```")
		blocks++
		if _, err := schema.Parse(block); err != nil {
			t.Errorf("README zed block %d does not compile: %v\n%s", blocks, err, block)
		}
	}
	if blocks == 0 {
		t.Fatal("README.md has no ```zed block")
	}
}
