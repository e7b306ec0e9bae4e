## Nim bindings of libchat (liblibchat.so / liblibchat.a), over the C API of
## `crates/ffi/include/libchat.h`.
##
## The persistent API is wrapped in idiomatic procs: `string` for text, `seq[byte]` for bytes,
## failures raise `LibchatError` (with the stable `LIBCHAT_ERR_*` code and libchat's message).
## The drop-in API (the reference implementation's C functions) is declared as the reference's
## Nim bindings declare it, so existing Nim code keeps working; see the `dropin` section.
##
## Link with `--passL:"-L<dir of liblibchat.so> -llibchat"` (add `-Wl,-rpath,<dir>` or set
## LD_LIBRARY_PATH to run).
##
## A handle is used by one thread at a time; several handles (on the same database file too)
## may be used from several threads or processes.

import std/options
export options

{.pragma: lc, importc, cdecl.}

# ------------------------------------------------------------------------------------------
# C types (layouts of libchat.h)
# ------------------------------------------------------------------------------------------

type
  ContextHandle* {.incompleteStruct.} = object
  LibchatSlice* {.bycopy.} = object
    `ptr`*: ptr uint8
    len*: csize_t
  LibchatBytes* {.bycopy.} = object
    `ptr`*: ptr UncheckedArray[uint8]
    len*: csize_t
    cap*: csize_t
  LibchatString* {.bycopy.} = object
    `ptr`*: ptr UncheckedArray[char]
    len*: csize_t
    cap*: csize_t
  LibchatStringVec* {.bycopy.} = object
    `ptr`*: ptr UncheckedArray[LibchatString]
    len*: csize_t
    cap*: csize_t
  Payload* {.bycopy.} = object
    address*: LibchatString
    data*: LibchatBytes
  PayloadVec* {.bycopy.} = object
    `ptr`*: ptr UncheckedArray[Payload]
    len*: csize_t
    cap*: csize_t

  CSent {.bycopy.} = object
    conversation_id: LibchatString
    outbox_id: int64
    delivery_address: LibchatString
    envelope: LibchatBytes
  CReceived {.bycopy.} = object
    kind: int32
    is_new_conversation: bool
    inbox_id: int64
    sent_at_ms: int64
    conversation_id: LibchatString
    content: LibchatBytes
    hint: LibchatString
  CReceiveOutcome {.bycopy.} = object
    status: int32
    received: CReceived
    error: LibchatString
  CReceiveOutcomes {.bycopy.} = object
    `ptr`: ptr UncheckedArray[CReceiveOutcome]
    len: csize_t
    cap: csize_t
  CSentList {.bycopy.} = object
    `ptr`: ptr UncheckedArray[CSent]
    len: csize_t
    cap: csize_t
  COutboxEntry {.bycopy.} = object
    id: int64
    conversation_id: LibchatString
    conversation_hint: LibchatString
    delivery_address: LibchatString
    envelope: LibchatBytes
    created_at_ms: int64
  COutbox {.bycopy.} = object
    `ptr`: ptr UncheckedArray[COutboxEntry]
    len: csize_t
    cap: csize_t
  CInboxEntry {.bycopy.} = object
    id: int64
    conversation_id: LibchatString
    content: LibchatBytes
    sent_at_ms: int64
    received_at_ms: int64
    is_new_conversation: bool
  CInbox {.bycopy.} = object
    `ptr`: ptr UncheckedArray[CInboxEntry]
    len: csize_t
    cap: csize_t
  CConversation {.bycopy.} = object
    id: LibchatString
    peer_id: LibchatString
    created_at_ms: int64
    has_peer_key: bool
    peer_key: array[32, uint8]
  CConversations {.bycopy.} = object
    `ptr`: ptr UncheckedArray[CConversation]
    len: csize_t
    cap: csize_t
  CHistoryEntry {.bycopy.} = object
    id: int64
    direction: int32
    content: LibchatBytes
    timestamp_ms: int64
  CHistory {.bycopy.} = object
    `ptr`: ptr UncheckedArray[CHistoryEntry]
    len: csize_t
    cap: csize_t
  CSchemaStatus {.bycopy.} = object
    applied: LibchatStringVec
    pending: LibchatStringVec
    unknown_applied: LibchatStringVec
    is_current: bool
    is_newer_than_library: bool
  CImportReport {.bycopy.} = object
    outcome: int32
    identity_name: LibchatString
    identity_public_key_hex: LibchatString
    intro_keys: uint64
    conversations: uint64
    ratchet_states: uint64
    skipped_keys: uint64
    duration_ms: uint64
  ProgressFn = proc (userData: pointer; phase: int32; done, total: uint64) {.cdecl.}

const
  LIBCHAT_ABI_VERSION* = 2'u32
  LIBCHAT_OK* = 0'i32
  # Status codes (libchat.h), fixed forever.
  LIBCHAT_ERR_INTERNAL* = -100'i32
  LIBCHAT_ERR_NULL_POINTER* = -101'i32
  LIBCHAT_ERR_INVALID_UTF8* = -102'i32
  LIBCHAT_ERR_INVALID_ARGUMENT* = -103'i32
  LIBCHAT_ERR_TOO_LARGE* = -104'i32
  LIBCHAT_ERR_WRONG_KEY* = -110'i32
  LIBCHAT_ERR_NEWER_SCHEMA* = -111'i32
  LIBCHAT_ERR_FOREIGN_DATABASE* = -112'i32
  LIBCHAT_ERR_LOCKED* = -113'i32
  LIBCHAT_ERR_ENCRYPTION_UNAVAILABLE* = -114'i32
  LIBCHAT_ERR_CANNOT_OPEN* = -115'i32
  LIBCHAT_ERR_MIGRATION* = -116'i32
  LIBCHAT_ERR_CORRUPT* = -117'i32
  LIBCHAT_ERR_STORAGE* = -118'i32
  LIBCHAT_ERR_NOT_FOUND* = -119'i32
  LIBCHAT_ERR_LEGACY_DATABASE* = -120'i32
  LIBCHAT_ERR_UNSUPPORTED* = -121'i32
  LIBCHAT_ERR_BAD_BUNDLE* = -130'i32
  LIBCHAT_ERR_UNKNOWN_CONVERSATION* = -131'i32
  LIBCHAT_ERR_REPLAY* = -132'i32
  LIBCHAT_ERR_DECODE* = -133'i32
  LIBCHAT_ERR_DECRYPT* = -134'i32
  LIBCHAT_ERR_TOO_MANY_SKIPPED* = -135'i32
  LIBCHAT_ERR_HANDSHAKE* = -136'i32
  LIBCHAT_ERR_UNEXPECTED_PAYLOAD* = -137'i32
  LIBCHAT_ERR_PROTOCOL* = -138'i32
  LIBCHAT_ERR_IMPORT_SOURCE_UNREADABLE* = -150'i32
  LIBCHAT_ERR_IMPORT_NOT_LEGACY* = -151'i32
  LIBCHAT_ERR_IMPORT_SOURCE_KEY* = -152'i32
  LIBCHAT_ERR_IMPORT_SOURCE_INVALID* = -153'i32
  LIBCHAT_ERR_IMPORT_SOURCE_IN_USE* = -154'i32
  LIBCHAT_ERR_IMPORT_TARGET_EXISTS* = -155'i32
  LIBCHAT_ERR_IMPORT_TARGET* = -156'i32

# ------------------------------------------------------------------------------------------
# C functions: persistent API
# ------------------------------------------------------------------------------------------

proc libchat_version(): cstring {.lc.}
proc libchat_abi_version(): uint32 {.lc.}
proc libchat_last_error_code(): int32 {.lc.}
proc libchat_last_error_message(output: ptr LibchatString): int32 {.lc.}
proc libchat_open(path: pointer; pathLen: csize_t; key: pointer; keyLen: csize_t;
                  keyKind, durability: int32; name: pointer; nameLen: csize_t;
                  output: ptr ptr ContextHandle): int32 {.lc.}
proc libchat_close(handle: ptr ptr ContextHandle) {.lc.}
proc libchat_intro_bundle(ctx: ptr ContextHandle; output: ptr LibchatString): int32 {.lc.}
proc libchat_public_key(ctx: ptr ContextHandle; output: ptr array[32, uint8]): int32 {.lc.}
proc libchat_start_conversation(ctx: ptr ContextHandle; bundle: pointer; bundleLen: csize_t;
                                content: pointer; contentLen: csize_t;
                                output: ptr CSent): int32 {.lc.}
proc libchat_send(ctx: ptr ContextHandle; convo: pointer; convoLen: csize_t;
                  content: pointer; contentLen: csize_t; output: ptr CSent): int32 {.lc.}
proc libchat_receive(ctx: ptr ContextHandle; envelope: pointer; envelopeLen: csize_t;
                     output: ptr CReceived): int32 {.lc.}
proc libchat_receive_batch(ctx: ptr ContextHandle; envelopes: ptr LibchatSlice; count: csize_t;
                           output: ptr CReceiveOutcomes): int32 {.lc.}
proc libchat_send_batch(ctx: ptr ContextHandle; convo: pointer; convoLen: csize_t;
                        contents: ptr LibchatSlice; count: csize_t; output: ptr CSentList): int32 {.lc.}
proc libchat_mark_delivered_batch(ctx: ptr ContextHandle; ids: ptr int64; count: csize_t;
                                  wasPending: ptr bool): int32 {.lc.}
proc libchat_acknowledge_batch(ctx: ptr ContextHandle; ids: ptr int64; count: csize_t;
                               wasPending: ptr bool): int32 {.lc.}
proc libchat_outbox_pending(ctx: ptr ContextHandle; limit: csize_t; output: ptr COutbox): int32 {.lc.}
proc libchat_mark_delivered(ctx: ptr ContextHandle; id: int64; wasPending: ptr bool): int32 {.lc.}
proc libchat_inbox_pending(ctx: ptr ContextHandle; limit: csize_t; output: ptr CInbox): int32 {.lc.}
proc libchat_acknowledge(ctx: ptr ContextHandle; id: int64; wasPending: ptr bool): int32 {.lc.}
proc libchat_sync(ctx: ptr ContextHandle): int32 {.lc.}
proc libchat_conversations(ctx: ptr ContextHandle; output: ptr CConversations): int32 {.lc.}
proc libchat_history(ctx: ptr ContextHandle; convo: pointer; convoLen: csize_t; limit: csize_t;
                     output: ptr CHistory): int32 {.lc.}
proc libchat_schema_status(path: pointer; pathLen: csize_t; key: pointer; keyLen: csize_t;
                           keyKind: int32; output: ptr CSchemaStatus): int32 {.lc.}
proc libchat_import_legacy(src: pointer; srcLen: csize_t; srcKey: pointer; srcKeyLen: csize_t;
                           srcKeyKind: int32; dst: pointer; dstLen: csize_t; dstKey: pointer;
                           dstKeyLen: csize_t; dstKeyKind: int32; durability: int32;
                           progress: ProgressFn; userData: pointer;
                           output: ptr CImportReport): int32 {.lc.}
proc libchat_string_free(s: ptr LibchatString) {.lc.}
proc libchat_sent_free(r: ptr CSent) {.lc.}
proc libchat_received_free(r: ptr CReceived) {.lc.}
proc libchat_receive_outcomes_free(r: ptr CReceiveOutcomes) {.lc.}
proc libchat_sent_list_free(r: ptr CSentList) {.lc.}
proc libchat_outbox_free(r: ptr COutbox) {.lc.}
proc libchat_inbox_free(r: ptr CInbox) {.lc.}
proc libchat_conversations_free(r: ptr CConversations) {.lc.}
proc libchat_history_free(r: ptr CHistory) {.lc.}
proc libchat_schema_status_free(r: ptr CSchemaStatus) {.lc.}
proc libchat_import_report_free(r: ptr CImportReport) {.lc.}

# ------------------------------------------------------------------------------------------
# Nim API
# ------------------------------------------------------------------------------------------

type
  LibchatError* = object of CatchableError
    ## A libchat call failed; `code` is one of the `LIBCHAT_ERR_*` constants.
    code*: int32

  KeyKind* = enum
    keyNone = 0, keyRaw = 1, keyPassphrase = 2

  DatabaseKey* = object
    ## How the database is encrypted. Build with `noKey`, `rawKey` or `passphrase`.
    kind*: KeyKind
    bytes*: seq[byte]

  Durability* = enum
    durabilityFull = 0   ## a commit survives power loss
    durabilityNormal = 1 ## a commit survives an application crash; much faster

  Installation* = ref object
    ## One installation on a database file. Close it with `close`.
    handle: ptr ContextHandle

  Sent* = object
    conversationId*: string
    outboxId*: int64
    deliveryAddress*: string
    envelope*: seq[byte]

  ReceivedKind* = enum
    rkContent = 1, rkFrame = 2, rkUnknownConversation = 3, rkDuplicate = 4, rkEmpty = 5

  Received* = object
    kind*: ReceivedKind
    isNewConversation*: bool
    inboxId*: int64
    sentAtMs*: int64
    conversationId*: string
    content*: seq[byte]
    hint*: string

  ReceiveOutcome* = object
    ## One envelope of `receiveBatch`: `status` is `LIBCHAT_OK` (then `received` says what it
    ## was) or the `LIBCHAT_ERR_*` code `receive` would have raised (then `error` says why and
    ## `received` is not set).
    status*: int32
    received*: Received
    error*: string

  OutboxEntry* = object
    id*: int64
    conversationId*, conversationHint*, deliveryAddress*: string
    envelope*: seq[byte]
    createdAtMs*: int64

  InboxEntry* = object
    id*: int64
    conversationId*: string
    content*: seq[byte]
    sentAtMs*, receivedAtMs*: int64
    isNewConversation*: bool

  Conversation* = object
    id*, peerId*: string
    createdAtMs*: int64
    peerKey*: Option[array[32, byte]]
      ## The peer's installation public key (compare with the peer's `publicKey`); none for
      ## a conversation imported from a reference database or older than the database's
      ## record of peer keys (never stored).

  HistoryEntry* = object
    id*: int64
    sent*: bool
    content*: seq[byte]
    timestampMs*: int64

  SchemaStatus* = object
    applied*, pending*, unknownApplied*: seq[string]
    isCurrent*, isNewerThanLibrary*: bool

  ImportReport* = object
    alreadyImported*: bool
    identityName*, identityPublicKeyHex*: string
    introKeys*, conversations*, ratchetStates*, skippedKeys*, durationMs*: uint64

proc noKey*(): DatabaseKey = DatabaseKey(kind: keyNone)
proc rawKey*(key: openArray[byte]): DatabaseKey =
  ## A raw 32-byte SQLCipher key.
  DatabaseKey(kind: keyRaw, bytes: @key)
proc passphrase*(text: string): DatabaseKey =
  ## A passphrase (slow to open by design: 256,000 PBKDF2 iterations).
  DatabaseKey(kind: keyPassphrase, bytes: cast[seq[byte]](text))

proc toString(s: LibchatString): string =
  result = newString(int(s.len))
  if s.len > 0: copyMem(addr result[0], s.`ptr`, int(s.len))

proc toBytes(b: LibchatBytes): seq[byte] =
  result = newSeq[byte](int(b.len))
  if b.len > 0: copyMem(addr result[0], b.`ptr`, int(b.len))

proc toStrings(v: LibchatStringVec): seq[string] =
  for i in 0 ..< int(v.len): result.add toString(v.`ptr`[i])

template dataPtr(s: string): pointer =
  (if s.len == 0: nil else: unsafeAddr s[0])
template dataPtr(s: openArray[byte]): pointer =
  (if s.len == 0: nil else: unsafeAddr s[0])

proc lastErrorMessage*(): string =
  ## The message of the last failed libchat call on this thread.
  var msg: LibchatString
  if libchat_last_error_message(addr msg) == LIBCHAT_OK:
    result = toString(msg)
    libchat_string_free(addr msg)

proc check(status: int32) =
  if status != LIBCHAT_OK:
    var e = newException(LibchatError, lastErrorMessage())
    e.code = status
    raise e

proc version*(): string = $libchat_version()
proc abiVersion*(): uint32 = libchat_abi_version()

proc openInstallation*(path: string; key = noKey(); durability = durabilityFull;
                       name = ""): Installation =
  ## Opens (creating if missing) an installation on a database file.
  var h: ptr ContextHandle
  check libchat_open(dataPtr(path), csize_t(path.len), dataPtr(key.bytes),
                     csize_t(key.bytes.len), int32(ord(key.kind)), int32(ord(durability)),
                     dataPtr(name), csize_t(name.len), addr h)
  Installation(handle: h)

proc close*(i: Installation) =
  ## Closes the installation (a second close does nothing).
  libchat_close(addr i.handle)

proc isOpen*(i: Installation): bool = i.handle != nil

proc publicKey*(i: Installation): array[32, byte] =
  ## This installation's public (identity) key: what its peers' `Conversation.peerKey` shows.
  check libchat_public_key(i.handle, addr result)

proc introBundle*(i: Installation): string =
  var s: LibchatString
  check libchat_intro_bundle(i.handle, addr s)
  result = toString(s)
  libchat_string_free(addr s)

proc toSent(c: CSent): Sent =
  Sent(conversationId: toString(c.conversation_id), outboxId: c.outbox_id,
       deliveryAddress: toString(c.delivery_address), envelope: toBytes(c.envelope))

proc startConversation*(i: Installation; bundle: string; content: openArray[byte]): Sent =
  ## Starts a conversation from a peer's intro bundle; the envelope is queued in the outbox.
  var c: CSent
  check libchat_start_conversation(i.handle, dataPtr(bundle), csize_t(bundle.len),
                                   dataPtr(content), csize_t(content.len), addr c)
  result = toSent(c)
  libchat_sent_free(addr c)

proc send*(i: Installation; conversationId: string; content: openArray[byte]): Sent =
  ## Sends content; the envelope is queued in the outbox.
  var c: CSent
  check libchat_send(i.handle, dataPtr(conversationId), csize_t(conversationId.len),
                     dataPtr(content), csize_t(content.len), addr c)
  result = toSent(c)
  libchat_sent_free(addr c)

proc toReceived(c: CReceived): Received =
  Received(kind: ReceivedKind(c.kind), isNewConversation: c.is_new_conversation,
           inboxId: c.inbox_id, sentAtMs: c.sent_at_ms,
           conversationId: toString(c.conversation_id), content: toBytes(c.content),
           hint: toString(c.hint))

proc receive*(i: Installation; envelope: openArray[byte]): Received =
  ## Processes an incoming envelope; content goes to the inbox until acknowledged.
  var c: CReceived
  check libchat_receive(i.handle, dataPtr(envelope), csize_t(envelope.len), addr c)
  result = toReceived(c)
  libchat_received_free(addr c)

proc slices(items: openArray[seq[byte]]): seq[LibchatSlice] =
  for item in items:
    result.add LibchatSlice(`ptr`: cast[ptr uint8](dataPtr(item)), len: csize_t(item.len))

proc receiveBatch*(i: Installation; envelopes: openArray[seq[byte]]): seq[ReceiveOutcome] =
  ## Processes many envelopes in one transaction (up to 1,000), each failing alone: one
  ## outcome per envelope, in order (an unknown-conversation envelope is retried after the
  ## others). Raises only when the batch itself fails.
  var input = slices(envelopes)
  var c: CReceiveOutcomes
  check libchat_receive_batch(i.handle, (if input.len == 0: nil else: addr input[0]),
                              csize_t(input.len), addr c)
  for k in 0 ..< int(c.len):
    let o = c.`ptr`[k]
    if o.status == LIBCHAT_OK:
      result.add ReceiveOutcome(status: o.status, received: toReceived(o.received))
    else:
      result.add ReceiveOutcome(status: o.status, error: toString(o.error))
  libchat_receive_outcomes_free(addr c)

proc sendBatch*(i: Installation; conversationId: string;
                contents: openArray[seq[byte]]): seq[Sent] =
  ## Sends several contents in order, in one transaction (up to 1,000), all or nothing.
  var input = slices(contents)
  var c: CSentList
  check libchat_send_batch(i.handle, dataPtr(conversationId), csize_t(conversationId.len),
                           (if input.len == 0: nil else: addr input[0]), csize_t(input.len),
                           addr c)
  for k in 0 ..< int(c.len): result.add toSent(c.`ptr`[k])
  libchat_sent_list_free(addr c)

proc outboxPending*(i: Installation; limit = 100): seq[OutboxEntry] =
  var c: COutbox
  check libchat_outbox_pending(i.handle, csize_t(limit), addr c)
  for k in 0 ..< int(c.len):
    let e = c.`ptr`[k]
    result.add OutboxEntry(id: e.id, conversationId: toString(e.conversation_id),
                           conversationHint: toString(e.conversation_hint),
                           deliveryAddress: toString(e.delivery_address),
                           envelope: toBytes(e.envelope), createdAtMs: e.created_at_ms)
  libchat_outbox_free(addr c)

proc markDelivered*(i: Installation; outboxId: int64): bool =
  ## Removes a delivered envelope from the outbox; false if it was not pending.
  check libchat_mark_delivered(i.handle, outboxId, addr result)

proc markDeliveredBatch*(i: Installation; outboxIds: openArray[int64]): seq[bool] =
  ## Marks many envelopes delivered; for each id, whether it was still pending.
  result = newSeq[bool](outboxIds.len)
  if outboxIds.len > 0:
    check libchat_mark_delivered_batch(i.handle, unsafeAddr outboxIds[0],
                                       csize_t(outboxIds.len), addr result[0])

proc inboxPending*(i: Installation; limit = 100): seq[InboxEntry] =
  var c: CInbox
  check libchat_inbox_pending(i.handle, csize_t(limit), addr c)
  for k in 0 ..< int(c.len):
    let e = c.`ptr`[k]
    result.add InboxEntry(id: e.id, conversationId: toString(e.conversation_id),
                          content: toBytes(e.content), sentAtMs: e.sent_at_ms,
                          receivedAtMs: e.received_at_ms,
                          isNewConversation: e.is_new_conversation)
  libchat_inbox_free(addr c)

proc acknowledge*(i: Installation; inboxId: int64): bool =
  ## Removes received content from the inbox (the history keeps it); false if not pending.
  check libchat_acknowledge(i.handle, inboxId, addr result)

proc sync*(i: Installation) =
  ## Durability barrier: everything done on this installation before survives a power loss
  ## (does something only with durability Normal). Call it before telling the transport it
  ## may delete what you received.
  check libchat_sync(i.handle)

proc acknowledgeBatch*(i: Installation; inboxIds: openArray[int64]): seq[bool] =
  ## Acknowledges many contents; for each id, whether it was still pending.
  result = newSeq[bool](inboxIds.len)
  if inboxIds.len > 0:
    check libchat_acknowledge_batch(i.handle, unsafeAddr inboxIds[0], csize_t(inboxIds.len),
                                    addr result[0])

proc conversations*(i: Installation): seq[Conversation] =
  var c: CConversations
  check libchat_conversations(i.handle, addr c)
  for k in 0 ..< int(c.len):
    let e = c.`ptr`[k]
    result.add Conversation(id: toString(e.id), peerId: toString(e.peer_id),
                            createdAtMs: e.created_at_ms,
                            peerKey: if e.has_peer_key: some(e.peer_key)
                                     else: none(array[32, byte]))
  libchat_conversations_free(addr c)

proc history*(i: Installation; conversationId: string; limit = 100): seq[HistoryEntry] =
  var c: CHistory
  check libchat_history(i.handle, dataPtr(conversationId), csize_t(conversationId.len),
                        csize_t(limit), addr c)
  for k in 0 ..< int(c.len):
    let e = c.`ptr`[k]
    result.add HistoryEntry(id: e.id, sent: e.direction == 1, content: toBytes(e.content),
                            timestampMs: e.timestamp_ms)
  libchat_history_free(addr c)

proc schemaStatus*(path: string; key = noKey()): SchemaStatus =
  ## The schema status of a database file, read without writing anything.
  var c: CSchemaStatus
  check libchat_schema_status(dataPtr(path), csize_t(path.len), dataPtr(key.bytes),
                              csize_t(key.bytes.len), int32(ord(key.kind)), addr c)
  result = SchemaStatus(applied: toStrings(c.applied), pending: toStrings(c.pending),
                        unknownApplied: toStrings(c.unknown_applied),
                        isCurrent: c.is_current, isNewerThanLibrary: c.is_newer_than_library)
  libchat_schema_status_free(addr c)

proc importLegacy*(source: string; sourceKey: DatabaseKey; target: string;
                   targetKey: DatabaseKey; durability = durabilityFull): ImportReport =
  ## Imports a reference implementation's database into a new database file.
  var c: CImportReport
  check libchat_import_legacy(dataPtr(source), csize_t(source.len), dataPtr(sourceKey.bytes),
                              csize_t(sourceKey.bytes.len), int32(ord(sourceKey.kind)),
                              dataPtr(target), csize_t(target.len), dataPtr(targetKey.bytes),
                              csize_t(targetKey.bytes.len), int32(ord(targetKey.kind)),
                              int32(ord(durability)), nil, nil, addr c)
  result = ImportReport(alreadyImported: c.outcome == 2,
                        identityName: toString(c.identity_name),
                        identityPublicKeyHex: toString(c.identity_public_key_hex),
                        introKeys: c.intro_keys, conversations: c.conversations,
                        ratchetStates: c.ratchet_states, skippedKeys: c.skipped_keys,
                        durationMs: c.duration_ms)
  libchat_import_report_free(addr c)

proc toBytes*(s: string): seq[byte] = cast[seq[byte]](s)
proc toText*(b: openArray[byte]): string =
  result = newString(b.len)
  if b.len > 0: copyMem(addr result[0], unsafeAddr b[0], b.len)

# ------------------------------------------------------------------------------------------
# dropin: the reference implementation's C API, declared the way its Nim bindings declare it:
# `importc` with Nim's default calling convention (not `cdecl`), so that Nim returns an object
# larger than three words through a hidden pointer after the declared parameters — exactly
# the trailing out pointer of the C functions. (With `cdecl`, Nim would use the C struct
# return instead, which these functions do not implement.) Strings (three words) and slices
# (two words) are passed and returned by value.
# ------------------------------------------------------------------------------------------

type
  CreateIntroResult* = object
    error_code*: int32
    intro_bytes*: LibchatBytes
  NewConvoResult* = object
    error_code*: int32
    convo_id*: LibchatString
    payloads*: PayloadVec
  SendContentResult* = object
    error_code*: int32
    payloads*: PayloadVec
  HandlePayloadResult* = object
    error_code*: int32
    convo_id*: LibchatString
    content*: LibchatBytes
    is_new_convo*: bool
  ListConvoResult* = object
    error_code*: int32
    convo_ids*: LibchatStringVec

proc create_context*(name: LibchatString): ptr ContextHandle {.importc.}
proc installation_name*(ctx: ptr ContextHandle): LibchatString {.importc.}
proc destroy_context*(ctx: ptr ContextHandle) {.importc.}
proc destroy_string*(s: LibchatString) {.importc.}
proc create_intro_bundle*(ctx: ptr ContextHandle): CreateIntroResult {.importc.}
proc create_new_private_convo*(ctx: ptr ContextHandle; bundle, content: LibchatSlice): NewConvoResult {.importc.}
proc list_conversations*(ctx: ptr ContextHandle): ListConvoResult {.importc.}
proc send_content*(ctx: ptr ContextHandle; convoId: LibchatString; content: LibchatSlice): SendContentResult {.importc.}
proc handle_payload*(ctx: ptr ContextHandle; payload: LibchatSlice): HandlePayloadResult {.importc.}
proc destroy_intro_result*(r: ptr CreateIntroResult) {.importc.}
proc destroy_convo_result*(r: ptr NewConvoResult) {.importc.}
proc destroy_send_content_result*(r: ptr SendContentResult) {.importc.}
proc destroy_handle_payload_result*(r: ptr HandlePayloadResult) {.importc.}
proc destroy_list_result*(r: ptr ListConvoResult) {.importc.}

proc borrowed*(s: string): LibchatString =
  ## A string argument as the reference bindings pass it: borrowed (`cap = 0`).
  LibchatString(`ptr`: cast[ptr UncheckedArray[char]](dataPtr(s)), len: csize_t(s.len), cap: 0)

proc slice*(b: openArray[byte]): LibchatSlice =
  ## A byte argument (`ptr = nil` when empty, as the reference bindings pass it).
  LibchatSlice(`ptr`: cast[ptr uint8](dataPtr(b)), len: csize_t(b.len))

proc handle*(i: Installation): ptr ContextHandle =
  ## The C handle, for the drop-in functions (valid until `close`).
  i.handle

proc `$`*(s: LibchatString): string = toString(s)
proc toSeq*(b: LibchatBytes): seq[byte] = toBytes(b)
