// Package datagen generates deterministic relationship datasets for benchmarks and tests:
// the CRM dataset (a role tree, users in roles, nested groups, accounts and deals with
// owners, assignees, followers and shares) and role chains of any depth.
//
// Generators emit plain Tuples so that the same data can be loaded into an in-process store
// or sent to any Authzed-compatible endpoint.
package datagen

import (
	"fmt"
	"math/rand/v2"
)

// Tuple is one relationship: resource#relation@subject. SubjectRelation is "" for a plain
// object subject.
type Tuple struct {
	ResourceType, ResourceID, Relation      string
	SubjectType, SubjectID, SubjectRelation string
}

func (t Tuple) String() string {
	s := fmt.Sprintf("%s:%s#%s@%s:%s", t.ResourceType, t.ResourceID, t.Relation, t.SubjectType, t.SubjectID)
	if t.SubjectRelation != "" {
		s += "#" + t.SubjectRelation
	}
	return s
}

// CRMSchema is the schema the CRM dataset is written for: role hierarchies where a role sees
// what every role below it owns, nested groups, accounts and deals.
const CRMSchema = `definition user {}

/** role is a node of the sales organisation; parent is the role above it. */
definition role {
	relation member: user
	relation parent: role

	/** see: who may see what this role owns: its members and those of every role above. */
	permission see = member + parent->see
}

definition group {
	relation member: user | group#member
}

definition account {
	relation owner: user
	relation owner_role: role
	relation sub_assignee: user limit 5
	relation follower: user
	relation shared_role: role
	relation shared_group: group#member

	permission edit = owner + sub_assignee + owner_role->see
	permission view = edit + follower + shared_role->see + shared_group
}

definition deal {
	relation account: account
	relation owner: user
	relation sub_assignee: user limit 5

	permission edit = owner + sub_assignee + account->edit
	permission view = edit + account->view
}
`

// CRMConfig sizes the CRM dataset. Scale multiplies users, accounts and deals.
type CRMConfig struct {
	Scale float64
	Seed  uint64
	// RoleBranching and RoleDepth shape the role tree (4 and 6 by default).
	RoleBranching, RoleDepth int
}

// CRMStats describes a generated dataset, so callers can pick subjects and resources.
type CRMStats struct {
	Roles, Users, Groups, Accounts, Deals int
	Relationships                         int
}

func (c *CRMConfig) defaults() {
	if c.Scale <= 0 {
		c.Scale = 1
	}
	if c.RoleBranching <= 0 {
		c.RoleBranching = 4
	}
	if c.RoleDepth <= 0 {
		c.RoleDepth = 6
	}
}

// CRM emits the CRM dataset to emit, in a deterministic order for a given config. At scale 1
// it holds 20,000 users, 50,000 accounts and 150,000 deals: about 790,000 relationships.
func CRM(cfg CRMConfig, emit func(Tuple)) CRMStats {
	cfg.defaults()
	rng := rand.New(rand.NewPCG(cfg.Seed, 0x6b656e67656e))
	var st CRMStats
	count := func(t Tuple) { st.Relationships++; emit(t) }

	// The role tree: role 0 is the root; the children of role i are i*b+1 .. i*b+b.
	roles := 0
	levelSize := 1
	for range cfg.RoleDepth {
		roles += levelSize
		levelSize *= cfg.RoleBranching
	}
	for i := 1; i < roles; i++ {
		count(Tuple{"role", RoleID(i), "parent", "role", RoleID((i - 1) / cfg.RoleBranching), ""})
	}
	st.Roles = roles

	users := int(20_000 * cfg.Scale)
	for u := range users {
		count(Tuple{"role", RoleID(rng.IntN(roles)), "member", "user", UserID(u), ""})
	}
	st.Users = users

	// Groups: 500 per unit of scale, each with 10 to 40 users, and one in four nested in
	// another group of lower number (so nesting is acyclic and up to a few levels deep).
	groups := int(500 * cfg.Scale)
	for g := range groups {
		for _, u := range distinct(rng, 10+rng.IntN(31), users) {
			count(Tuple{"group", GroupID(g), "member", "user", UserID(u), ""})
		}
		if g > 0 && rng.IntN(4) == 0 {
			count(Tuple{"group", GroupID(rng.IntN(g)), "member", "group", GroupID(g), "member"})
		}
	}
	st.Groups = groups

	accounts := int(50_000 * cfg.Scale)
	for a := range accounts {
		id := AccountID(a)
		count(Tuple{"account", id, "owner", "user", UserID(rng.IntN(users)), ""})
		count(Tuple{"account", id, "owner_role", "role", RoleID(rng.IntN(roles)), ""})
		for _, u := range distinct(rng, rng.IntN(6), users) {
			count(Tuple{"account", id, "sub_assignee", "user", UserID(u), ""})
		}
		for _, u := range distinct(rng, rng.IntN(4), users) {
			count(Tuple{"account", id, "follower", "user", UserID(u), ""})
		}
		switch rng.IntN(3) {
		case 0:
			count(Tuple{"account", id, "shared_role", "role", RoleID(rng.IntN(roles)), ""})
		case 1:
			count(Tuple{"account", id, "shared_group", "group", GroupID(rng.IntN(groups)), "member"})
		}
	}
	st.Accounts = accounts

	deals := int(150_000 * cfg.Scale)
	for d := range deals {
		id := DealID(d)
		count(Tuple{"deal", id, "account", "account", AccountID(rng.IntN(accounts)), ""})
		count(Tuple{"deal", id, "owner", "user", UserID(rng.IntN(users)), ""})
		for _, u := range distinct(rng, rng.IntN(3), users) {
			count(Tuple{"deal", id, "sub_assignee", "user", UserID(u), ""})
		}
	}
	st.Deals = deals
	return st
}

// distinct returns n distinct numbers below max.
func distinct(rng *rand.Rand, n, max int) []int {
	out := make([]int, 0, n)
	for len(out) < n {
		v := rng.IntN(max)
		dup := false
		for _, o := range out {
			dup = dup || o == v
		}
		if !dup {
			out = append(out, v)
		}
	}
	return out
}

// ChainSchema is the schema of a role chain: see = member + parent->see.
const ChainSchema = `definition user {}

definition role {
	relation member: user
	relation parent: role
	permission see = member + parent->see
}
`

// Chain emits a chain of depth roles, role chain-0 at the top with user:boss as its member
// and each role chain-i the child of chain-(i-1); user:boss sees chain-(depth-1) only
// through every level.
func Chain(depth int, emit func(Tuple)) {
	emit(Tuple{"role", ChainRoleID(0), "member", "user", "boss", ""})
	for i := 1; i < depth; i++ {
		emit(Tuple{"role", ChainRoleID(i), "parent", "role", ChainRoleID(i - 1), ""})
	}
}

// RoleID is the id of the CRM dataset's i-th role.
func RoleID(i int) string { return fmt.Sprintf("r%d", i) }

// UserID is the id of the CRM dataset's i-th user.
func UserID(i int) string { return fmt.Sprintf("u%d", i) }

// GroupID is the id of the CRM dataset's i-th group.
func GroupID(i int) string { return fmt.Sprintf("g%d", i) }

// AccountID is the id of the CRM dataset's i-th account.
func AccountID(i int) string { return fmt.Sprintf("a%d", i) }

// DealID is the id of the CRM dataset's i-th deal.
func DealID(i int) string { return fmt.Sprintf("d%d", i) }

// ChainRoleID is the id of the i-th role of a role chain.
func ChainRoleID(i int) string { return fmt.Sprintf("chain-%d", i) }

// GroupsSchema is the schema of the nested groups dataset: groups whose members are users
// or the members of other groups.
const GroupsSchema = `definition user {}

definition group {
	relation member: user | group#member
}
`

// GroupsConfig shapes the nested groups dataset.
type GroupsConfig struct {
	// Width is the number of groups nested directly in the wide group, each with one user.
	Width int
	// Depth is the length of the chain of nested groups above the deep user.
	Depth int
}

// NestedGroups emits two structures. Wide: group wide-top holds Width groups wide-i as
// members, and each wide-i holds user wu-i. Deep: group deep-i holds group deep-(i+1) as a
// member for i below Depth-1, and deep-(Depth-1) holds user:deep, so user:deep is a member of
// every deep-i, the top one only through every level.
func NestedGroups(cfg GroupsConfig, emit func(Tuple)) {
	for i := range cfg.Width {
		emit(Tuple{"group", WideGroupID(i), "member", "user", WideUserID(i), ""})
		emit(Tuple{"group", WideTopGroupID, "member", "group", WideGroupID(i), "member"})
	}
	for i := range cfg.Depth {
		if i == cfg.Depth-1 {
			emit(Tuple{"group", DeepGroupID(i), "member", "user", DeepUserID, ""})
		} else {
			emit(Tuple{"group", DeepGroupID(i), "member", "group", DeepGroupID(i + 1), "member"})
		}
	}
}

// Object ids of the nested groups dataset.
const (
	WideTopGroupID = "wide-top"
	DeepUserID     = "deep"
)

// WideGroupID is the id of the i-th group nested in the wide group.
func WideGroupID(i int) string { return fmt.Sprintf("wide-%d", i) }

// WideUserID is the id of the user in the i-th wide group.
func WideUserID(i int) string { return fmt.Sprintf("wu%d", i) }

// DeepGroupID is the id of the group at depth i of the deep chain.
func DeepGroupID(i int) string { return fmt.Sprintf("deep-%d", i) }
