package check

import (
	"github.com/kengen/kengen/store"
)

// Small objects are read whole. A deal's or an account's own relationships (owner,
// assignees, account, shares) are next to each other in the forward index, and a check asks
// about several of them: reading them relation by relation costs a seek each (six for an
// account in the CRM model), reading the object costs one seek and a few steps. An object
// with more than objectReadLimit relationships (a large group, a popular document) is read
// by relation as before; the evaluation remembers that, so it tries the whole read once.
//
// The relationships are kept for the evaluation (one request), so an object asked about
// twice — a deal's account on both the edit and the view branch — is read once.

// objectReadLimit is the most relationships an object may have to be read whole.
const objectReadLimit = 32

type objectRef struct{ typ, id string }

// objectRels is an object's relationships in forward index order; complete is false when
// the object has too many to read whole.
type objectRels struct {
	rels     []store.Relationship
	complete bool
}

// relationsOf returns the relationships of typ:id#relation if the object is small enough to
// be read whole; ok is false when the caller must read the relation from the store.
func (w *walker) relationsOf(typ, id, relation string) (rels []store.Relationship, ok bool, err error) {
	ref := objectRef{typ, id}
	w.ev.mu.Lock()
	o := w.ev.mu.objects[ref]
	w.ev.mu.Unlock()
	if o == nil {
		all, complete, err := w.ev.r.Object(typ, id, objectReadLimit)
		if err != nil {
			return nil, false, err
		}
		o = &objectRels{rels: all, complete: complete}
		w.ev.mu.Lock()
		w.ev.mu.objects[ref] = o
		w.ev.mu.Unlock()
	}
	if !o.complete {
		return nil, false, nil
	}
	// The relationships of one relation are contiguous.
	start := -1
	for i := range o.rels {
		if o.rels[i].Relation == relation {
			if start < 0 {
				start = i
			}
		} else if start >= 0 {
			return o.rels[start:i], true, nil
		}
	}
	if start < 0 {
		return nil, true, nil
	}
	return o.rels[start:], true, nil
}

// get is store.Reader.Get through the object's relationships when it was read whole.
func (w *walker) get(typ, id, relation, subjType, subjID, subjRel string) (store.Relationship, bool, error) {
	rels, ok, err := w.relationsOf(typ, id, relation)
	if err != nil {
		return store.Relationship{}, false, err
	}
	if !ok {
		return w.ev.r.Get(typ, id, relation, subjType, subjID, subjRel)
	}
	if subjRel == "..." {
		subjRel = ""
	}
	for _, t := range rels {
		if t.SubjectType == subjType && t.SubjectID == subjID && t.SubjectRelation == subjRel {
			return t, true, nil
		}
	}
	return store.Relationship{}, false, nil
}

// subjects is store.Reader.Subjects through the object's relationships when it was read
// whole.
func (w *walker) subjects(typ, id, relation string, fn func(*store.Relationship) bool) error {
	rels, ok, err := w.relationsOf(typ, id, relation)
	if err != nil || !ok {
		if err == nil {
			err = w.ev.r.Subjects(typ, id, relation, fn)
		}
		return err
	}
	for i := range rels {
		if !fn(&rels[i]) {
			break
		}
	}
	return nil
}

// subjectsOfType is store.Reader.SubjectsOfType for a userset subject (subjRel not empty)
// through the object's relationships when it was read whole.
func (w *walker) subjectsOfType(typ, id, relation, subjType, subjRel string, fn func(*store.Relationship) bool) error {
	rels, ok, err := w.relationsOf(typ, id, relation)
	if err != nil || !ok {
		if err == nil {
			err = w.ev.r.SubjectsOfType(typ, id, relation, subjType, subjRel, fn)
		}
		return err
	}
	for i := range rels {
		if t := &rels[i]; t.SubjectType == subjType && t.SubjectRelation == subjRel && !fn(t) {
			break
		}
	}
	return nil
}
