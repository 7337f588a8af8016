package schema

// compile turns a type-checked AST into the compiled schema. It assumes check found no errors.
func compile(f *fileNode) *Schema {
	s := &Schema{
		UseExpiration:   f.useExpiration,
		UseSelf:         f.useSelf,
		UseTypechecking: f.useTypechecking,
		namespaces:      map[string]*Namespace{},
		caveats:         map[string]*Caveat{},
	}
	for _, cv := range f.caveats {
		c := &Caveat{Name: cv.name, Doc: cv.doc, Expression: cv.expr, Pos: cv.pos}
		for _, p := range cv.params {
			c.Parameters = append(c.Parameters, CaveatParameter{Name: p.name, Type: p.typ.String()})
		}
		s.Caveats = append(s.Caveats, c)
		s.caveats[c.Name] = c
	}
	for _, d := range f.definitions {
		ns := &Namespace{Name: d.name, Doc: d.doc, Pos: d.pos, relations: map[string]*Relation{}}
		for _, r := range d.relations {
			rel := &Relation{Name: r.name, Doc: r.doc, Pos: r.pos, IsPermission: r.isPermission, Limit: r.limit}
			s.KeywordLimits = s.KeywordLimits || r.limitKeyword
			for _, t := range r.types {
				rel.AllowedSubjects = append(rel.AllowedSubjects, &AllowedSubject{
					Type:       t.typ,
					Relation:   t.relation,
					Wildcard:   t.wildcard,
					Caveat:     t.caveat,
					Expiration: t.expiration,
					Pos:        t.pos,
				})
			}
			if r.isPermission {
				rel.Rewrite = compileExpr(r.expr)
			}
			if f.useTypechecking {
				for _, a := range r.annotations {
					rel.TypeAnnotations = append(rel.TypeAnnotations, a.typ)
				}
			}
			ns.Relations = append(ns.Relations, rel)
			ns.relations[rel.Name] = rel
		}
		s.Namespaces = append(s.Namespaces, ns)
		s.namespaces[ns.Name] = ns
	}
	return s
}

func compileExpr(e *exprNode) *Rewrite {
	rw := &Rewrite{Pos: e.pos}
	switch e.kind {
	case exprUnion, exprIntersection, exprExclusion:
		rw.Kind = map[exprKind]RewriteKind{
			exprUnion:        RewriteUnion,
			exprIntersection: RewriteIntersection,
			exprExclusion:    RewriteExclusion,
		}[e.kind]
		for _, c := range e.children {
			rw.Children = append(rw.Children, compileExpr(c))
		}
	case exprName:
		rw.Kind = RewriteComputedUserset
		rw.Relation = e.name
	case exprArrow:
		rw.Kind = RewriteTupleToUserset
		rw.Tupleset = e.tupleset
		rw.Relation = e.name
		rw.Func = e.fn
	case exprNil:
		rw.Kind = RewriteNil
	case exprSelf:
		rw.Kind = RewriteSelf
	}
	return rw
}
