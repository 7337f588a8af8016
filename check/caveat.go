package check

import (
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

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
		cv, err := convertParam(typ, v)
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

// convertParam turns a JSON-shaped context value into the Go value CEL expects for the
// declared type: JSON numbers arrive as float64, timestamps and durations as strings.
func convertParam(typ string, v any) (any, error) {
	switch typ {
	case "int":
		return toInt(v)
	case "uint":
		i, err := toInt(v)
		if err != nil {
			return nil, err
		}
		if i < 0 {
			return nil, fmt.Errorf("%v is negative, want uint", v)
		}
		return uint64(i), nil
	case "double":
		switch n := v.(type) {
		case float64:
			return n, nil
		case int64:
			return float64(n), nil
		case int:
			return float64(n), nil
		case json.Number:
			return n.Float64()
		}
		return nil, fmt.Errorf("%v is not a number", v)
	case "bool":
		if b, ok := v.(bool); ok {
			return b, nil
		}
		return nil, fmt.Errorf("%v is not a bool", v)
	case "string":
		if s, ok := v.(string); ok {
			return s, nil
		}
		return nil, fmt.Errorf("%v is not a string", v)
	case "ipaddress":
		s, ok := v.(string)
		if !ok {
			return nil, fmt.Errorf("%v is not an IP address string", v)
		}
		addr, err := netip.ParseAddr(s)
		if err != nil {
			return nil, fmt.Errorf("%q is not an IP address", s)
		}
		return addr.String(), nil
	case "bytes":
		if s, ok := v.(string); ok {
			return []byte(s), nil
		}
		return nil, fmt.Errorf("%v is not bytes", v)
	case "timestamp":
		switch t := v.(type) {
		case time.Time:
			return t, nil
		case string:
			ts, err := time.Parse(time.RFC3339Nano, t)
			if err != nil {
				return nil, fmt.Errorf("%q is not an RFC 3339 timestamp", t)
			}
			return ts, nil
		}
		return nil, fmt.Errorf("%v is not a timestamp", v)
	case "duration":
		switch d := v.(type) {
		case time.Duration:
			return d, nil
		case string:
			dur, err := time.ParseDuration(d)
			if err != nil {
				return nil, fmt.Errorf("%q is not a duration", d)
			}
			return dur, nil
		}
		return nil, fmt.Errorf("%v is not a duration", v)
	case "any":
		return normaliseAny(v), nil
	}
	if inner, ok := strings.CutPrefix(typ, "list<"); ok {
		inner = strings.TrimSuffix(inner, ">")
		items, ok := v.([]any)
		if !ok {
			return nil, fmt.Errorf("%v is not a list", v)
		}
		out := make([]any, len(items))
		for i, item := range items {
			c, err := convertParam(inner, item)
			if err != nil {
				return nil, fmt.Errorf("item %d: %w", i, err)
			}
			out[i] = c
		}
		return out, nil
	}
	if inner, ok := strings.CutPrefix(typ, "map<"); ok {
		inner = strings.TrimSuffix(inner, ">")
		m, ok := v.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("%v is not a map", v)
		}
		out := make(map[string]any, len(m))
		for k, item := range m {
			c, err := convertParam(inner, item)
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", k, err)
			}
			out[k] = c
		}
		return out, nil
	}
	return nil, fmt.Errorf("unknown parameter type %q", typ)
}

func toInt(v any) (int64, error) {
	switch n := v.(type) {
	case float64:
		if n != math.Trunc(n) || math.IsInf(n, 0) {
			return 0, fmt.Errorf("%v is not an integer", v)
		}
		return int64(n), nil
	case int64:
		return n, nil
	case int:
		return int64(n), nil
	case json.Number:
		return n.Int64()
	}
	return 0, fmt.Errorf("%v is not an integer", v)
}

// normaliseAny turns integral JSON numbers into int64 so `somemap.foo == 42` compares as the
// schema author wrote it.
func normaliseAny(v any) any {
	switch x := v.(type) {
	case float64:
		if x == math.Trunc(x) && math.Abs(x) < 1<<53 {
			return int64(x)
		}
		return x
	case []any:
		out := make([]any, len(x))
		for i, item := range x {
			out[i] = normaliseAny(item)
		}
		return out
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, item := range x {
			out[k] = normaliseAny(item)
		}
		return out
	}
	return v
}
