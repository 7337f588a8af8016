package main

import (
	"bufio"
	"errors"
	"fmt"
	"strings"

	v1 "github.com/authzed/authzed-go/proto/authzed/api/v1"
	"github.com/spf13/cobra"
	"google.golang.org/protobuf/types/known/structpb"
)

type checkFlags struct {
	explain        bool
	bulk           string
	context        string
	atLeastAsFresh string
	atExact        string
}

func newCheckCmd(c *cli) *cobra.Command {
	var cf checkFlags
	cmd := &cobra.Command{
		Use:   "check RESOURCE PERMISSION SUBJECT | check --bulk FILE",
		Short: "Ask whether a subject has a permission on a resource",
		Long: `Ask whether a subject has a permission (or relation) on a resource.

The exit code says the answer, so scripts can branch on it: 0 has permission, 2 no
permission, 3 conditional (a caveat needs context the request did not give), 1 an error.

--bulk FILE checks many at once, one per line, as 'deal:1#view@user:sato' or
'deal:1 view user:sato' ('//' starts a comment; - reads standard input). The exit code is
1 if any check failed, else 2 if any answered no permission, else 3 if any is conditional.`,
		Example: `  kengen check deal:1 view user:sato
  kengen check deal:1 edit group:eng#member --explain
  kengen check --bulk checks.txt --json`,
		RunE: func(cmd *cobra.Command, args []string) error {
			consistency, err := cf.consistency()
			if err != nil {
				return err
			}
			if cf.bulk != "" {
				if len(args) != 0 {
					return errors.New("--bulk FILE takes no other arguments")
				}
				return checkBulk(cmd, c, &cf, consistency)
			}
			if len(args) != 3 {
				return fmt.Errorf("want RESOURCE PERMISSION SUBJECT (e.g. deal:1 view user:sato), got %d arguments", len(args))
			}
			req, err := checkRequest(args[0], args[1], args[2])
			if err != nil {
				return err
			}
			req.Consistency = consistency
			req.WithTracing = cf.explain
			if cf.context != "" {
				req.Context = &structpb.Struct{}
				if err := req.Context.UnmarshalJSON([]byte(cf.context)); err != nil {
					return fmt.Errorf("--context: want a JSON object: %w", err)
				}
			}
			client, err := c.connect()
			if err != nil {
				return err
			}
			defer client.Close()
			resp, err := client.CheckPermission(cmd.Context(), req)
			if err != nil {
				return err
			}
			if c.json {
				err = c.printJSON(resp)
			} else {
				_, err = fmt.Fprintln(c.stdout, answer(resp.GetPermissionship(), resp.GetPartialCaveatInfo()))
				if err == nil && cf.explain {
					writeTrace(c.stdout, resp.GetDebugTrace().GetCheck(), 0)
				}
			}
			if err != nil {
				return err
			}
			return exitFor(resp.GetPermissionship())
		},
	}
	f := cmd.Flags()
	f.BoolVar(&cf.explain, "explain", false, "print the evaluation tree behind the answer")
	f.StringVar(&cf.bulk, "bulk", "", "check every line of FILE in one call (- for standard input)")
	f.StringVar(&cf.context, "context", "", "JSON object: caveat context for the check")
	f.StringVar(&cf.atLeastAsFresh, "at-least-as-fresh", "", "ZedToken: answer at this revision or a later one")
	f.StringVar(&cf.atExact, "at-exact-snapshot", "", "ZedToken: answer at exactly this revision")
	return cmd
}

func (cf *checkFlags) consistency() (*v1.Consistency, error) {
	switch {
	case cf.atLeastAsFresh != "" && cf.atExact != "":
		return nil, errors.New("give --at-least-as-fresh or --at-exact-snapshot, not both")
	case cf.atLeastAsFresh != "":
		return &v1.Consistency{Requirement: &v1.Consistency_AtLeastAsFresh{AtLeastAsFresh: &v1.ZedToken{Token: cf.atLeastAsFresh}}}, nil
	case cf.atExact != "":
		return &v1.Consistency{Requirement: &v1.Consistency_AtExactSnapshot{AtExactSnapshot: &v1.ZedToken{Token: cf.atExact}}}, nil
	}
	return &v1.Consistency{Requirement: &v1.Consistency_FullyConsistent{FullyConsistent: true}}, nil
}

func checkRequest(resource, permission, subject string) (*v1.CheckPermissionRequest, error) {
	res, err := parseObject("resource", resource)
	if err != nil {
		return nil, err
	}
	sub, err := parseSubject(subject)
	if err != nil {
		return nil, err
	}
	return &v1.CheckPermissionRequest{Resource: res, Permission: permission, Subject: sub}, nil
}

// parseCheckLine reads `deal:1#view@user:sato` or `deal:1 view user:sato`.
func parseCheckLine(line string) (*v1.CheckPermissionRequest, error) {
	if fields := strings.Fields(line); len(fields) == 3 {
		return checkRequest(fields[0], fields[1], fields[2])
	}
	left, subject, ok := strings.Cut(line, "@")
	resource, permission, ok2 := strings.Cut(left, "#")
	if !ok || !ok2 {
		return nil, fmt.Errorf("%q: want deal:1#view@user:sato or deal:1 view user:sato", line)
	}
	return checkRequest(resource, permission, subject)
}

func checkBulk(cmd *cobra.Command, c *cli, cf *checkFlags, consistency *v1.Consistency) error {
	text, err := readInput(c, cf.bulk)
	if err != nil {
		return err
	}
	req := &v1.CheckBulkPermissionsRequest{Consistency: consistency, WithTracing: cf.explain}
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "//") || strings.HasPrefix(line, "#") {
			continue
		}
		r, err := parseCheckLine(line)
		if err != nil {
			return fmt.Errorf("%s:%d: %w", cf.bulk, n, err)
		}
		req.Items = append(req.Items, &v1.CheckBulkPermissionsRequestItem{Resource: r.Resource, Permission: r.Permission, Subject: r.Subject})
		lines = append(lines, line)
	}
	if len(req.Items) == 0 {
		return fmt.Errorf("%s holds no checks", cf.bulk)
	}
	client, err := c.connect()
	if err != nil {
		return err
	}
	defer client.Close()
	resp, err := client.CheckBulkPermissions(cmd.Context(), req)
	if err != nil {
		return err
	}
	if c.json {
		if err := c.printJSON(resp); err != nil {
			return err
		}
	}
	var failed, denied, conditional bool
	for i, pair := range resp.GetPairs() {
		var out string
		if e := pair.GetError(); e != nil {
			failed = true
			out = "error: " + e.GetMessage()
		} else {
			p := pair.GetItem().GetPermissionship()
			denied = denied || p == v1.CheckPermissionResponse_PERMISSIONSHIP_NO_PERMISSION
			conditional = conditional || p == v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION
			out = answer(p, pair.GetItem().GetPartialCaveatInfo())
		}
		if !c.json && i < len(lines) {
			if _, err := fmt.Fprintf(c.stdout, "%s\t%s\n", lines[i], out); err != nil {
				return err
			}
		}
	}
	switch {
	case failed:
		return exitCode(exitError)
	case denied:
		return exitCode(exitNoPermission)
	case conditional:
		return exitCode(exitConditional)
	}
	return nil
}

func answer(p v1.CheckPermissionResponse_Permissionship, partial *v1.PartialCaveatInfo) string {
	switch p {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		return "true"
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return "conditional (missing context: " + strings.Join(partial.GetMissingRequiredContext(), ", ") + ")"
	}
	return "false"
}

func exitFor(p v1.CheckPermissionResponse_Permissionship) error {
	switch p {
	case v1.CheckPermissionResponse_PERMISSIONSHIP_HAS_PERMISSION:
		return nil
	case v1.CheckPermissionResponse_PERMISSIONSHIP_CONDITIONAL_PERMISSION:
		return exitCode(exitConditional)
	}
	return exitCode(exitNoPermission)
}
