package check

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"

	"github.com/kengen/kengen/schema"
)

// caveatCache holds compiled caveat programs, keyed by the caveat's full declaration, so a
// schema change that edits a caveat compiles it anew and an unchanged one is reused.
type caveatCache struct {
	mu struct {
		sync.Mutex
		programs map[string]*caveatProgram
	}
}

func newCaveatCache() *caveatCache {
	c := &caveatCache{}
	c.mu.programs = make(map[string]*caveatProgram)
	return c
}

// caveatProgram is one compiled caveat expression.
type caveatProgram struct {
	caveat  *schema.Caveat
	program cel.Program
	params  map[string]string // parameter name → declared type
	err     error             // a compile error, returned on every evaluation
}

func caveatKey(c *schema.Caveat) string {
	var b strings.Builder
	b.WriteString(c.Name)
	for _, p := range c.Parameters {
		b.WriteString("\x00")
		b.WriteString(p.Name)
		b.WriteString(" ")
		b.WriteString(p.Type)
	}
	b.WriteString("\x00")
	b.WriteString(c.Expression)
	return b.String()
}

func (cc *caveatCache) program(c *schema.Caveat) *caveatProgram {
	key := caveatKey(c)
	cc.mu.Lock()
	p, ok := cc.mu.programs[key]
	cc.mu.Unlock()
	if ok {
		return p
	}
	p = compileCaveat(c)
	cc.mu.Lock()
	cc.mu.programs[key] = p
	cc.mu.Unlock()
	return p
}

// celType maps a schema parameter type to CEL. ipaddress is carried as a string with an
// `in_cidr` method, which is all SpiceDB's ipaddress type offers.
func celType(t string) (*cel.Type, error) {
	switch t {
	case "int":
		return cel.IntType, nil
	case "uint":
		return cel.UintType, nil
	case "bool":
		return cel.BoolType, nil
	case "string", "ipaddress":
		return cel.StringType, nil
	case "double":
		return cel.DoubleType, nil
	case "bytes":
		return cel.BytesType, nil
	case "duration":
		return cel.DurationType, nil
	case "timestamp":
		return cel.TimestampType, nil
	case "any":
		return cel.DynType, nil
	}
	if inner, ok := strings.CutPrefix(t, "list<"); ok && strings.HasSuffix(inner, ">") {
		e, err := celType(strings.TrimSuffix(inner, ">"))
		if err != nil {
			return nil, err
		}
		return cel.ListType(e), nil
	}
	if inner, ok := strings.CutPrefix(t, "map<"); ok && strings.HasSuffix(inner, ">") {
		e, err := celType(strings.TrimSuffix(inner, ">"))
		if err != nil {
			return nil, err
		}
		return cel.MapType(cel.StringType, e), nil
	}
	return nil, fmt.Errorf("unknown parameter type %q", t)
}

func inCIDR(ip, cidr ref.Val) ref.Val {
	addr, err := netip.ParseAddr(fmt.Sprint(ip.Value()))
	if err != nil {
		return types.NewErr("in_cidr: %q is not an IP address", ip.Value())
	}
	prefix, err := netip.ParsePrefix(fmt.Sprint(cidr.Value()))
	if err != nil {
		return types.NewErr("in_cidr: %q is not a CIDR", cidr.Value())
	}
	return types.Bool(prefix.Contains(addr))
}

func compileCaveat(c *schema.Caveat) *caveatProgram {
	p := &caveatProgram{caveat: c, params: make(map[string]string, len(c.Parameters))}
	opts := []cel.EnvOption{
		cel.CrossTypeNumericComparisons(true),
		cel.Function("in_cidr",
			cel.MemberOverload("string_in_cidr_string", []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType,
				cel.BinaryBinding(inCIDR))),
	}
	for _, param := range c.Parameters {
		t, err := celType(param.Type)
		if err != nil {
			p.err = fmt.Errorf("%w: caveat %s, parameter %s: %w", ErrCaveat, c.Name, param.Name, err)
			return p
		}
		p.params[param.Name] = param.Type
		opts = append(opts, cel.Variable(param.Name, t))
	}
	env, err := cel.NewEnv(opts...)
	if err != nil {
		p.err = fmt.Errorf("%w: caveat %s: %w", ErrCaveat, c.Name, err)
		return p
	}
	ast, iss := env.Compile(c.Expression)
	if iss.Err() != nil {
		p.err = fmt.Errorf("%w: caveat %s: %w", ErrCaveat, c.Name, iss.Err())
		return p
	}
	if ast.OutputType() != cel.BoolType && ast.OutputType() != cel.DynType {
		p.err = fmt.Errorf("%w: caveat %s must evaluate to bool, not %s", ErrCaveat, c.Name, ast.OutputType())
		return p
	}
	prg, err := env.Program(ast, cel.EvalOptions(cel.OptPartialEval))
	if err != nil {
		p.err = fmt.Errorf("%w: caveat %s: %w", ErrCaveat, c.Name, err)
		return p
	}
	p.program = prg
	return p
}

// evaluate runs the caveat over the merged context: the relationship's own values take
// precedence over the request's. A parameter missing from both makes the answer conditional
// when the expression's value depends on it.
func (p *caveatProgram) evaluate(relCtx, reqCtx map[string]any) (outcome, error) {
	if p.err != nil {
		return outcome{}, p.err
	}
	vars := make(map[string]any, len(p.params))
	var missing []string
	for name, typ := range p.params {
		v, ok := relCtx[name]
		if !ok {
			v, ok = reqCtx[name]
		}
		if !ok {
			missing = append(missing, name)
			continue
		}
		cv, err := schema.ConvertCaveatValue(typ, v)
		if err != nil {
			return outcome{}, fmt.Errorf("%w: caveat %s, parameter %s: %w", ErrCaveat, p.caveat.Name, name, err)
		}
		vars[name] = cv
	}
	patterns := make([]*cel.AttributePatternType, len(missing))
	for i, name := range missing {
		patterns[i] = cel.AttributePattern(name)
	}
	act, err := cel.PartialVars(vars, patterns...)
	if err != nil {
		return outcome{}, fmt.Errorf("%w: caveat %s: %w", ErrCaveat, p.caveat.Name, err)
	}
	val, _, err := p.program.Eval(act)
	if err != nil {
		return outcome{}, fmt.Errorf("%w: caveat %s: %w", ErrCaveat, p.caveat.Name, err)
	}
	if types.IsUnknown(val) {
		sort.Strings(missing)
		return outcome{m: ConditionalPermission, missing: missing}, nil
	}
	b, ok := val.Value().(bool)
	if !ok {
		return outcome{}, fmt.Errorf("%w: caveat %s returned %v, not a bool", ErrCaveat, p.caveat.Name, val.Value())
	}
	if b {
		return outcome{m: HasPermission}, nil
	}
	return outcome{m: NoPermission}, nil
}
