## Two installations on database files through the Nim bindings: handshake, 100 messages each
## way, close and reopen, a duplicate, an unknown conversation, a wrong key; then the drop-in
## API declared the way the reference's Nim bindings declare it.
##
##   nim c -r --passL:"-L<dir> -llibchat -Wl,-rpath,<dir>" tests/test_libchat.nim TMPDIR

import std/[os, strutils]
import ../libchat

var passed, failed = 0

template check(cond: untyped) =
  if cond:
    inc passed
  else:
    inc failed
    let info = instantiationInfo()
    stderr.writeLine info.filename & ":" & $info.line & ": check failed: " & astToStr(cond)

template expectError(expected: int32; body: untyped) =
  try:
    body
    inc failed
    stderr.writeLine "line " & $instantiationInfo().line & ": expected LibchatError " & $expected
  except LibchatError as err:
    if err.code == expected and err.msg.len > 0:
      inc passed
    else:
      inc failed
      stderr.writeLine "line " & $instantiationInfo().line & ": got " & $err.code & " (" &
        err.msg & "), expected " & $expected

let dir = if paramCount() >= 1: paramStr(1) else: getTempDir() / "libchat-nim-test"
createDir(dir)
let alicePath = dir / "alice.db"
let bobPath = dir / "bob.db"
for p in [alicePath, bobPath]:
  for suffix in ["", "-wal", "-shm"]:
    removeFile(p & suffix)

var aliceKeyBytes, bobKeyBytes, wrongKeyBytes: array[32, byte]
for i in 0 ..< 32:
  aliceKeyBytes[i] = byte(i + 1)
  bobKeyBytes[i] = byte(100 + i)
  wrongKeyBytes[i] = byte(7)
let aliceKey = rawKey(aliceKeyBytes)
let bobKey = rawKey(bobKeyBytes)

check abiVersion() == LIBCHAT_ABI_VERSION
check version().len > 0

var alice = openInstallation(alicePath, aliceKey, durabilityNormal, "alice")
var bob = openInstallation(bobPath, bobKey, durabilityNormal, "bob")

# Handshake.
let bundle = bob.introBundle()
check bundle.startsWith("logos_chatintro_1_")
let first = alice.startConversation(bundle, toBytes("hello bob"))
check first.deliveryAddress == "delivery_address"
check alice.outboxPending().len == 1
let got = bob.receive(first.envelope)
check got.kind == rkContent
check got.isNewConversation
check toText(got.content) == "hello bob"
check alice.markDelivered(first.outboxId)
check not alice.markDelivered(first.outboxId)
check bob.acknowledge(got.inboxId)
bob.sync()
let aliceConvo = first.conversationId
let bobConvo = got.conversationId

# 100 messages each way, each delivered, received, marked delivered and acknowledged.
proc exchange(sender, receiver: Installation; senderConvo, receiverConvo, tag: string) =
  for n in 0 ..< 100:
    let text = tag & " " & $n
    let sent = sender.send(senderConvo, toBytes(text))
    let r = receiver.receive(sent.envelope)
    check r.kind == rkContent and toText(r.content) == text and r.conversationId == receiverConvo
    check sender.markDelivered(sent.outboxId)
    check receiver.acknowledge(r.inboxId)

exchange(alice, bob, aliceConvo, bobConvo, "alice to bob")
exchange(bob, alice, bobConvo, aliceConvo, "bob to alice")
check alice.outboxPending().len == 0 and bob.outboxPending().len == 0
check alice.inboxPending().len == 0 and bob.inboxPending().len == 0

# A duplicate: the same envelope again changes nothing.
let dupe = alice.send(aliceConvo, toBytes("once"))
check bob.receive(dupe.envelope).kind == rkContent
check bob.receive(dupe.envelope).kind == rkDuplicate
check bob.inboxPending().len == 1

# Batches: five messages sent in one transaction, received shuffled with garbage and a
# duplicate in another, acknowledged and marked delivered in one call each.
var contents: seq[seq[byte]]
for n in 0 ..< 5: contents.add toBytes("batch " & $n)
let batch = alice.sendBatch(aliceConvo, contents)
check batch.len == 5 and batch[0].outboxId < batch[4].outboxId
let backlog = @[batch[3].envelope, toBytes("garbage!"), batch[0].envelope, batch[1].envelope,
                batch[4].envelope, batch[2].envelope, batch[0].envelope]
let outcomes = bob.receiveBatch(backlog)
check outcomes.len == 7
check outcomes[1].status == LIBCHAT_ERR_DECODE and outcomes[1].error.len > 0
check outcomes[6].status == LIBCHAT_OK and outcomes[6].received.kind == rkDuplicate
var inboxIds: seq[int64]
for k in [0, 2, 3, 4, 5]:
  check outcomes[k].status == LIBCHAT_OK and outcomes[k].received.kind == rkContent
  inboxIds.add outcomes[k].received.inboxId
check toText(outcomes[0].received.content) == "batch 3"
check bob.acknowledgeBatch(inboxIds & @[inboxIds[0]]) == @[true, true, true, true, true, false]
var outboxIds: seq[int64]
for s in batch: outboxIds.add s.outboxId
check alice.markDeliveredBatch(outboxIds) == @[true, true, true, true, true]
check alice.markDeliveredBatch(outboxIds) == @[false, false, false, false, false]
check bob.receiveBatch(newSeq[seq[byte]]()).len == 0
expectError(LIBCHAT_ERR_UNKNOWN_CONVERSATION):
  discard alice.sendBatch("no-such-conversation", contents)

# Close and reopen both from their files.
alice.close()
alice.close() # harmless
check not alice.isOpen
bob.close()
alice = openInstallation(alicePath, aliceKey, durabilityNormal)
bob = openInstallation(bobPath, bobKey, durabilityNormal)
let convos = alice.conversations()
check convos.len == 1 and convos[0].id == aliceConvo and convos[0].peerId == bobConvo
check convos[0].createdAtMs > 0
# Who each conversation is with: the other's installation key, on both sides.
check alice.publicKey() != bob.publicKey()
check convos[0].peerKey == some(bob.publicKey())
check bob.conversations()[0].peerKey == some(alice.publicKey())
let hist = alice.history(aliceConvo, 1000)
check hist.len == 207 # hello + 100 sent + 100 received + "once" + 5 sent in a batch
check hist[0].sent and toText(hist[0].content) == "hello bob"
check (not hist[101].sent) and toText(hist[101].content) == "bob to alice 0"
check bob.inboxPending().len == 1 # "once" survived the restart unacknowledged
let again = bob.send(bobConvo, toBytes("after restart"))
let r = alice.receive(again.envelope)
check r.kind == rkContent and toText(r.content) == "after restart"

# An unknown conversation: Bob writes to Carol; Alice cannot place the envelope.
let carolPath = dir / "carol.db"
for suffix in ["", "-wal", "-shm"]: removeFile(carolPath & suffix)
var carol = openInstallation(carolPath, noKey(), durabilityNormal, "carol")
let toCarol = bob.startConversation(carol.introBundle(), toBytes("hi carol"))
let unknown = alice.receive(toCarol.envelope)
check unknown.kind == rkUnknownConversation and unknown.hint.len > 0
check carol.receive(toCarol.envelope).kind == rkContent
expectError(LIBCHAT_ERR_UNKNOWN_CONVERSATION):
  discard alice.send("no-such-conversation", toBytes("x"))
expectError(LIBCHAT_ERR_BAD_BUNDLE):
  discard alice.startConversation("logos_chatintro_1_nope", toBytes("x"))
expectError(LIBCHAT_ERR_DECODE):
  discard alice.receive(toBytes("\x0a\x03foo\xff\xff"))

# A wrong key: refused with its own code, the file is untouched.
alice.close()
let before = readFile(alicePath)
expectError(LIBCHAT_ERR_WRONG_KEY):
  discard openInstallation(alicePath, rawKey(wrongKeyBytes))
expectError(LIBCHAT_ERR_WRONG_KEY):
  discard openInstallation(alicePath, noKey())
check readFile(alicePath) == before
expectError(LIBCHAT_ERR_INVALID_ARGUMENT):
  discard openInstallation(alicePath, rawKey([1'u8, 2, 3]))
let status = schemaStatus(alicePath, aliceKey)
check status.isCurrent and status.applied.len > 0 and not status.isNewerThanLibrary
expectError(LIBCHAT_ERR_NOT_FOUND):
  discard schemaStatus(dir / "missing.db")

# The drop-in API, declared as the reference's Nim bindings declare it: results returned "by
# value" (a hidden trailing pointer), string arguments borrowed with cap = 0.
let saro = create_context(borrowed("saro"))
let raya = create_context(borrowed("raya"))
check saro != nil and raya != nil
var name = installation_name(saro)
check $name == "saro"
destroy_string(name)
var intro = create_intro_bundle(raya)
check intro.error_code == 0
let introBytes = toSeq(intro.intro_bytes)
var convo = create_new_private_convo(saro, slice(introBytes), slice(toBytes("hello raya")))
check convo.error_code == 0 and convo.payloads.len == 1
check $convo.payloads.`ptr`[0].address == "delivery_address"
var handled = handle_payload(raya, slice(toSeq(convo.payloads.`ptr`[0].data)))
check handled.error_code == 0 and handled.is_new_convo
check toText(toSeq(handled.content)) == "hello raya"
let rayaConvo = $handled.convo_id
var reply = send_content(raya, borrowed(rayaConvo), slice(toBytes("hi saro")))
check reply.error_code == 0
var back = handle_payload(saro, slice(toSeq(reply.payloads.`ptr`[0].data)))
check back.error_code == 0 and toText(toSeq(back.content)) == "hi saro"
var list = list_conversations(raya)
check list.error_code == 0 and list.convo_ids.len == 1 and $list.convo_ids.`ptr`[0] == rayaConvo
var bad = send_content(raya, borrowed("nope"), slice(toBytes("x")))
check bad.error_code == -2 # BadConvoId
var empty = handle_payload(raya, slice(newSeq[byte]()))
check empty.error_code == 0 and empty.content.len == 0
destroy_list_result(addr list)
destroy_list_result(addr list) # zeroed: harmless
destroy_handle_payload_result(addr back)
destroy_handle_payload_result(addr handled)
destroy_handle_payload_result(addr empty)
destroy_send_content_result(addr reply)
destroy_send_content_result(addr bad)
destroy_convo_result(addr convo)
destroy_intro_result(addr intro)
destroy_context(saro)
destroy_context(raya)

# The drop-in functions on a persistent handle: nothing piles up in its outbox or inbox.
var intro2 = create_intro_bundle(carol.handle)
var convo2 = create_new_private_convo(bob.handle, slice(toSeq(intro2.intro_bytes)), slice(toBytes("drop-in")))
check convo2.error_code == 0
var handled2 = handle_payload(carol.handle, slice(toSeq(convo2.payloads.`ptr`[0].data)))
check handled2.error_code == 0 and toText(toSeq(handled2.content)) == "drop-in"
check carol.inboxPending().len == 1 # "hi carol" (persistent API, not acknowledged); not "drop-in"
destroy_handle_payload_result(addr handled2)
destroy_convo_result(addr convo2)
destroy_intro_result(addr intro2)

bob.close()
carol.close()
echo passed, " passed, ", failed, " failed"
quit(if failed == 0: 0 else: 1)
