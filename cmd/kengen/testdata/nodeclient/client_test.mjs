// SpiceDB's Node.js client against a running kengen: node client_test.mjs <host:port> <key>.
// cmd/kengen/node_client_test.go starts `kengen serve` and runs this; it exits non-zero, naming
// the step, when an answer is not what SpiceDB would give.
import assert from "node:assert/strict";
import { v1 } from "@authzed/authzed-node";

const [endpoint, key] = process.argv.slice(2);
const security = v1.ClientSecurity.INSECURE_PLAINTEXT_CREDENTIALS;
const { promises: client } = v1.NewClient(key, endpoint, security);
const full = v1.Consistency.create({ requirement: { oneofKind: "fullyConsistent", fullyConsistent: true } });

const obj = (objectType, objectId) => v1.ObjectReference.create({ objectType, objectId });
const subject = (objectType, objectId) => v1.SubjectReference.create({ object: obj(objectType, objectId) });
const rel = (op, type, id, relation, stype, sid) =>
  v1.RelationshipUpdate.create({
    operation: op,
    relationship: v1.Relationship.create({ resource: obj(type, id), relation, subject: subject(stype, sid) }),
  });

// CheckDebugTrace.PermissionType, which the package does not export by name.
const PERMISSION_TYPE_RELATION = 1;
const PERMISSION_TYPE_PERMISSION = 2;

let passed = 0;
async function step(name, fn) {
  try {
    await fn();
    passed++;
  } catch (err) {
    console.error(`node client: ${name}: ${err.stack || err}`);
    process.exit(1);
  }
}

const schema = `definition user {}

definition group {
	relation member: user | group#member
}

definition doc {
	/** kengen:limit 10 */
	relation viewer: user | group#member
	relation editor: user
	permission view = viewer + editor
}`;

await step("write schema", async () => {
  const resp = await client.writeSchema(v1.WriteSchemaRequest.create({ schema }));
  assert.ok(resp.writtenAt?.token, "written_at token");
});

await step("read schema", async () => {
  const resp = await client.readSchema(v1.ReadSchemaRequest.create({}));
  assert.match(resp.schemaText, /permission view = viewer \+ editor/);
  assert.match(resp.schemaText, /kengen:limit 10/);
});

let writtenAt;
await step("write relationships", async () => {
  const T = v1.RelationshipUpdate_Operation.TOUCH;
  const resp = await client.writeRelationships(v1.WriteRelationshipsRequest.create({
    updates: [
      rel(T, "doc", "1", "viewer", "user", "ann"),
      rel(T, "doc", "2", "editor", "user", "ann"),
      rel(T, "group", "eng", "member", "user", "bob"),
      v1.RelationshipUpdate.create({
        operation: T,
        relationship: v1.Relationship.create({
          resource: obj("doc", "3"), relation: "viewer",
          subject: v1.SubjectReference.create({ object: obj("group", "eng"), optionalRelation: "member" }),
        }),
      }),
    ],
  }));
  writtenAt = resp.writtenAt;
  assert.ok(writtenAt?.token, "written_at token");
});

await step("check", async () => {
  const has = v1.CheckPermissionResponse_Permissionship.HAS_PERMISSION;
  const no = v1.CheckPermissionResponse_Permissionship.NO_PERMISSION;
  const check = async (id, who, consistency) =>
    (await client.checkPermission(v1.CheckPermissionRequest.create({
      resource: obj("doc", id), permission: "view", subject: subject("user", who), consistency,
    }))).permissionship;
  assert.equal(await check("1", "ann", full), has);
  assert.equal(await check("3", "bob", full), has);
  assert.equal(await check("3", "ann", full), no);
  const fresh = v1.Consistency.create({ requirement: { oneofKind: "atLeastAsFresh", atLeastAsFresh: writtenAt } });
  assert.equal(await check("2", "ann", fresh), has);
});

await step("check with tracing", async () => {
  const resp = await client.checkPermission(v1.CheckPermissionRequest.create({
    resource: obj("doc", "3"), permission: "view", subject: subject("user", "bob"), consistency: full, withTracing: true,
  }));
  const root = resp.debugTrace?.check;
  assert.equal(root?.resource?.objectType, "doc");
  assert.equal(root?.permission, "view");
  assert.equal(root?.permissionType, PERMISSION_TYPE_PERMISSION);
  const viewer = root.resolution.subProblems.traces[0];
  assert.equal(viewer.permission, "viewer");
  assert.equal(viewer.permissionType, PERMISSION_TYPE_RELATION);
  assert.equal(viewer.resolution.subProblems.traces[0].resource.objectType, "group");
  assert.match(resp.debugTrace.schemaUsed, /definition doc/);
});

await step("lookup resources stream", async () => {
  const results = await client.lookupResources(v1.LookupResourcesRequest.create({
    resourceObjectType: "doc", permission: "view", subject: subject("user", "ann"), consistency: full,
  }));
  assert.deepEqual(results.map((r) => r.resourceObjectId).sort(), ["1", "2"]);
});

await step("error codes", async () => {
  await assert.rejects(
    client.writeRelationships(v1.WriteRelationshipsRequest.create({
      updates: [rel(v1.RelationshipUpdate_Operation.CREATE, "doc", "1", "viewer", "user", "ann")],
    })),
    (err) => err.code === 6 && /already exists/.test(err.details), // ALREADY_EXISTS
  );
  const { promises: stranger } = v1.NewClient("not-the-key", endpoint, security);
  await assert.rejects(stranger.readSchema(v1.ReadSchemaRequest.create({})), (err) => err.code === 16); // UNAUTHENTICATED
});

console.log(`node client: all ${passed} steps answered as SpiceDB would`);
process.exit(0);
