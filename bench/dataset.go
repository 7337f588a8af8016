package bench

import (
	"fmt"
	"math/rand/v2"

	"github.com/kengen/kengen/bench/datagen"
)

// DatasetConfig names a dataset and sizes it.
type DatasetConfig struct {
	// Name is "crm", "chain", "tree" or "groups".
	Name string
	// Scale multiplies the CRM dataset's users, accounts and deals (1 = 790,000
	// relationships); Seed makes it different but still deterministic.
	Scale float64
	Seed  uint64
	// Depth is the length of a role chain ("chain") or of the nested group chain ("groups").
	Depth int
	// Width is the number of groups nested in the wide group ("groups").
	Width int
	// Roles is the number of roles of the role tree ("tree", branching 4).
	Roles int
	// Order is the order in which a chain's or tree's parent edges are written: "down"
	// (parents first, the default), "up" (children first) or "random" (from Seed).
	Order string
}

// pair is one (resource, subject) whose answer the driver knows to be true.
type pair struct{ resource, subject string }

// Dataset is a generated dataset and what the driver knows about it: the permission its
// checks ask, the pairs known to be allowed, and where its writes go.
type Dataset struct {
	Name string
	// Schema is the schema text the dataset is written for.
	Schema string
	// Relationships is how many relationships the dataset holds.
	Relationships int

	// Checks ask ResourceType:id Permission SubjectType:id.
	ResourceType, Permission, SubjectType string

	emit func(func(datagen.Tuple))

	// known holds the known-allowed pairs in a deterministic shuffled order, so that a run
	// walks distinct pairs; bySubject and byResource index them for the lookups.
	known      []pair
	deepest    pair // when set, asked first: the pair whose answer lies deepest
	bySubject  map[string][]string
	byResource map[string][]string

	randResource, randSubject func(*rand.Rand) string

	// Writes touch writeType:id writeRelation @ SubjectType:id, after which id
	// writePermission subject must be allowed.
	writeType, writeRelation, writePermission string
	randWriteResource                         func(*rand.Rand) string
}

// Emit sends every relationship of the dataset to fn in a deterministic order.
func (d *Dataset) Emit(fn func(datagen.Tuple)) { d.emit(fn) }

// KnownAllowed is the number of (resource, subject) pairs the driver knows to be allowed.
func (d *Dataset) KnownAllowed() int { return len(d.known) }

// String describes the dataset in one line.
func (d *Dataset) String() string {
	return fmt.Sprintf("%s: %d relationships, %d known-allowed %s %s %s pairs", d.Name, d.Relationships, len(d.known), d.ResourceType, d.Permission, d.SubjectType)
}

// NewDataset generates the dataset once to learn its size and its known-allowed pairs.
func NewDataset(cfg DatasetConfig) (*Dataset, error) {
	var d *Dataset
	switch cfg.Name {
	case "crm":
		if cfg.Scale <= 0 || cfg.Scale > 100 {
			return nil, fmt.Errorf("%w: crm scale %g; pass a scale above 0 and at most 100", ErrDataset, cfg.Scale)
		}
		d = crmDataset(cfg)
	case "chain":
		if cfg.Depth < 1 {
			return nil, fmt.Errorf("%w: chain depth %d; pass a depth of at least 1", ErrDataset, cfg.Depth)
		}
		if !datagen.ValidOrder(cfg.Order) {
			return nil, fmt.Errorf("%w: order %q; choose down, up or random", ErrDataset, cfg.Order)
		}
		d = chainDataset(cfg.Depth, cfg.Order, cfg.Seed)
	case "tree":
		if cfg.Roles < 1 {
			return nil, fmt.Errorf("%w: tree of %d roles; pass at least 1", ErrDataset, cfg.Roles)
		}
		if !datagen.ValidOrder(cfg.Order) {
			return nil, fmt.Errorf("%w: order %q; choose down, up or random", ErrDataset, cfg.Order)
		}
		d = treeDataset(cfg.Roles, cfg.Order, cfg.Seed)
	case "groups":
		if cfg.Depth < 1 || cfg.Width < 1 {
			return nil, fmt.Errorf("%w: groups depth %d width %d; pass both at least 1", ErrDataset, cfg.Depth, cfg.Width)
		}
		d = groupsDataset(cfg.Width, cfg.Depth)
	default:
		return nil, fmt.Errorf("%w: %q; choose crm, chain, tree or groups", ErrDataset, cfg.Name)
	}
	d.index(cfg.Seed)
	return d, nil
}

// crmDataset: checks are deal view user; a deal's owner and sub assignees are known allowed.
func crmDataset(cfg DatasetConfig) *Dataset {
	ccfg := datagen.CRMConfig{Scale: cfg.Scale, Seed: cfg.Seed}
	d := &Dataset{
		Name:         fmt.Sprintf("crm scale %g", cfg.Scale),
		Schema:       datagen.CRMSchema,
		ResourceType: "deal", Permission: "view", SubjectType: "user",
		emit:      func(fn func(datagen.Tuple)) { datagen.CRM(ccfg, fn) },
		writeType: "account", writeRelation: "follower", writePermission: "view",
	}
	st := datagen.CRM(ccfg, func(t datagen.Tuple) {
		if t.ResourceType == "deal" && (t.Relation == "owner" || t.Relation == "sub_assignee") {
			d.known = append(d.known, pair{t.ResourceID, t.SubjectID})
		}
	})
	d.Relationships = st.Relationships
	d.randResource = func(r *rand.Rand) string { return datagen.DealID(r.IntN(st.Deals)) }
	d.randSubject = func(r *rand.Rand) string { return datagen.UserID(r.IntN(st.Users)) }
	d.randWriteResource = func(r *rand.Rand) string { return datagen.AccountID(r.IntN(st.Accounts)) }
	return d
}

// chainDataset: checks are role see user; user:boss sees every role of the chain.
func chainDataset(depth int, order string, seed uint64) *Dataset {
	return hierarchyDataset(fmt.Sprintf("chain depth %d", depth), order, depth, datagen.ChainRoleID,
		func(fn func(datagen.Tuple)) { datagen.ChainOrdered(depth, order, seed, fn) })
}

// treeDataset: a role tree of n roles, branching 4; user:boss, a member of the root, sees
// every role.
func treeDataset(n int, order string, seed uint64) *Dataset {
	return hierarchyDataset(fmt.Sprintf("role tree of %d", n), order, n, datagen.TreeRoleID,
		func(fn func(datagen.Tuple)) { datagen.Tree(n, order, seed, fn) })
}

// hierarchyDataset is a role hierarchy of n roles named by roleID, written in order by emit,
// with user:boss seeing every role: checks are role see user, the known answers are the boss
// on every role, and one random subject in a thousand is the boss.
func hierarchyDataset(name, order string, n int, roleID func(int) string, emit func(func(datagen.Tuple))) *Dataset {
	if order != "" && order != datagen.OrderDown {
		name += ", written " + order
	}
	d := &Dataset{
		Name:         name,
		Schema:       datagen.ChainSchema,
		ResourceType: "role", Permission: "see", SubjectType: "user",
		emit:      emit,
		writeType: "role", writeRelation: "member", writePermission: "see",
	}
	d.Relationships = n
	for i := range n {
		d.known = append(d.known, pair{roleID(i), "boss"})
	}
	d.deepest = pair{roleID(n - 1), "boss"}
	d.randResource = func(r *rand.Rand) string { return roleID(r.IntN(n)) }
	// One user in a thousand is the boss; the others are members of nothing.
	d.randSubject = func(r *rand.Rand) string {
		if r.IntN(1000) == 0 {
			return "boss"
		}
		return datagen.UserID(r.IntN(1_000_000))
	}
	d.randWriteResource = d.randResource
	return d
}

// groupsDataset: checks are group member user over the wide and deep nested groups.
func groupsDataset(width, depth int) *Dataset {
	cfg := datagen.GroupsConfig{Width: width, Depth: depth}
	d := &Dataset{
		Name:         fmt.Sprintf("groups width %d depth %d", width, depth),
		Schema:       datagen.GroupsSchema,
		ResourceType: "group", Permission: "member", SubjectType: "user",
		emit:      func(fn func(datagen.Tuple)) { datagen.NestedGroups(cfg, fn) },
		writeType: "group", writeRelation: "member", writePermission: "member",
	}
	datagen.NestedGroups(cfg, func(datagen.Tuple) { d.Relationships++ })
	for i := range width {
		d.known = append(d.known, pair{datagen.WideGroupID(i), datagen.WideUserID(i)}, pair{datagen.WideTopGroupID, datagen.WideUserID(i)})
	}
	for i := range depth {
		d.known = append(d.known, pair{datagen.DeepGroupID(i), datagen.DeepUserID})
	}
	d.deepest = pair{datagen.DeepGroupID(0), datagen.DeepUserID}
	d.randResource = func(r *rand.Rand) string {
		switch r.IntN(3) {
		case 0:
			return datagen.WideTopGroupID
		case 1:
			return datagen.WideGroupID(r.IntN(width))
		}
		return datagen.DeepGroupID(r.IntN(depth))
	}
	d.randSubject = func(r *rand.Rand) string {
		if r.IntN(2) == 0 {
			return datagen.DeepUserID
		}
		return datagen.WideUserID(r.IntN(width))
	}
	d.randWriteResource = func(r *rand.Rand) string { return datagen.WideGroupID(r.IntN(width)) }
	return d
}

// index shuffles the known pairs deterministically and indexes them for the lookups.
func (d *Dataset) index(seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 0x6b6e6f776e))
	rng.Shuffle(len(d.known), func(i, j int) { d.known[i], d.known[j] = d.known[j], d.known[i] })
	for i, p := range d.known {
		if p == d.deepest && d.deepest != (pair{}) {
			d.known[0], d.known[i] = d.known[i], d.known[0]
			break
		}
	}
	d.bySubject = make(map[string][]string)
	d.byResource = make(map[string][]string)
	for _, p := range d.known {
		d.bySubject[p.subject] = append(d.bySubject[p.subject], p.resource)
		d.byResource[p.resource] = append(d.byResource[p.resource], p.subject)
	}
}
