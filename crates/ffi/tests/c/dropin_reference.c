/*
 * A consumer of the reference implementation's C API, written only from ../shared/FFI.md: it
 * declares the structs and functions itself (it does not include libchat.h) and must link
 * against liblibchat unchanged and run. Run under valgrind by .ci/ffi.
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- the ABI, as FFI.md records it ---- */
typedef struct ContextHandle ContextHandle;
typedef struct { const uint8_t *ptr; size_t len; } Slice;           /* byte slice (input) */
typedef struct { uint8_t *ptr; size_t len; size_t cap; } OwnedBytes; /* owned byte vector */
typedef struct { char *ptr; size_t len; size_t cap; } RString;       /* owned / input string */
typedef struct { RString address; OwnedBytes data; } Payload;
typedef struct { Payload *ptr; size_t len; size_t cap; } PayloadVec;
typedef struct { RString *ptr; size_t len; size_t cap; } StringVec;

enum { None = 0, BadPtr = -1, BadConvoId = -2, BadIntro = -3, NotImplemented = -4,
       BufferExceeded = -5, UnknownError = -6 };

typedef struct { int32_t error_code; OwnedBytes intro_bytes; } CreateIntroResult;
typedef struct { int32_t error_code; RString convo_id; PayloadVec payloads; } NewConvoResult;
typedef struct { int32_t error_code; PayloadVec payloads; } SendContentResult;
typedef struct { int32_t error_code; RString convo_id; OwnedBytes content; bool is_new_convo; } HandlePayloadResult;
typedef struct { int32_t error_code; StringVec convo_ids; } ListConvoResult;

ContextHandle *create_context(RString name);
RString installation_name(const ContextHandle *ctx);
void destroy_context(ContextHandle *ctx);
void destroy_string(RString s);
void create_intro_bundle(ContextHandle *ctx, CreateIntroResult *out);
void create_new_private_convo(ContextHandle *ctx, Slice bundle, Slice content, NewConvoResult *out);
void list_conversations(ContextHandle *ctx, ListConvoResult *out);
void send_content(ContextHandle *ctx, RString convo_id, Slice content, SendContentResult *out);
void handle_payload(ContextHandle *ctx, Slice payload, HandlePayloadResult *out);
void destroy_intro_result(CreateIntroResult *r);
void destroy_convo_result(NewConvoResult *r);
void destroy_send_content_result(SendContentResult *r);
void destroy_handle_payload_result(HandlePayloadResult *r);
void destroy_list_result(ListConvoResult *r);

/* ---- the test ---- */
static int checks = 0, failures = 0;
#define CHECK(cond)                                                                  \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* A string as the Nim bindings pass it: borrowed, cap = 0. */
static RString borrowed(const char *s) { RString r = {(char *)s, strlen(s), 0}; return r; }
static Slice slice(const void *p, size_t n) { Slice s = {(const uint8_t *)p, n}; return s; }
static int eq(const char *p, size_t n, const char *text) {
    return n == strlen(text) && (n == 0 || memcmp(p, text, n) == 0);
}

int main(void) {
    /* An input string is never freed by the library: pass heap memory and free it ourselves. */
    char *saro_name = strdup("saro");
    RString name_in = {saro_name, 4, 5}; /* cap != 0: the reference would free it; we must not */
    ContextHandle *saro = create_context(name_in);
    ContextHandle *raya = create_context(borrowed("raya"));
    CHECK(saro != NULL && raya != NULL);
    free(saro_name); /* still ours */

    RString name = installation_name(saro);
    CHECK(eq(name.ptr, name.len, "saro"));
    destroy_string(name);

    /* Nim zeroes each result before the call; C programs may not. Use garbage. */
    CreateIntroResult intro;
    memset(&intro, 0x5A, sizeof intro);
    create_intro_bundle(raya, &intro);
    CHECK(intro.error_code == None);
    CHECK(intro.intro_bytes.len > 18 && memcmp(intro.intro_bytes.ptr, "logos_chatintro_1_", 18) == 0);

    NewConvoResult convo;
    memset(&convo, 0x5A, sizeof convo);
    create_new_private_convo(saro, slice(intro.intro_bytes.ptr, intro.intro_bytes.len), slice("hello", 5), &convo);
    CHECK(convo.error_code == None);
    CHECK(convo.payloads.len >= 1);

    HandlePayloadResult got;
    memset(&got, 0x5A, sizeof got);
    CHECK(convo.payloads.len >= 1);
    for (size_t i = 0; i < convo.payloads.len; i++) {
        Payload *p = &convo.payloads.ptr[i];
        CHECK(eq(p->address.ptr, p->address.len, "delivery_address"));
        handle_payload(raya, slice(p->data.ptr, p->data.len), &got);
        CHECK(got.error_code == None);
    }
    CHECK(eq((const char *)got.content.ptr, got.content.len, "hello"));
    CHECK(got.is_new_convo);

    /* Raya replies 20 times; Saro reads them all. */
    RString raya_convo = {got.convo_id.ptr, got.convo_id.len, 0};
    for (int i = 0; i < 20; i++) {
        char text[32];
        snprintf(text, sizeof text, "reply %d", i);
        SendContentResult sent;
        memset(&sent, 0x5A, sizeof sent);
        send_content(raya, raya_convo, slice(text, strlen(text)), &sent);
        CHECK(sent.error_code == None && sent.payloads.len == 1);
        HandlePayloadResult r;
        memset(&r, 0x5A, sizeof r);
        handle_payload(saro, slice(sent.payloads.ptr[0].data.ptr, sent.payloads.ptr[0].data.len), &r);
        CHECK(r.error_code == None && eq((const char *)r.content.ptr, r.content.len, text) && !r.is_new_convo);
        CHECK(eq(r.convo_id.ptr, r.convo_id.len, "") == 0);
        /* Processing the same payload again: success, empty content. */
        HandlePayloadResult again;
        handle_payload(saro, slice(sent.payloads.ptr[0].data.ptr, sent.payloads.ptr[0].data.len), &again);
        CHECK(again.error_code == None && again.content.len == 0);
        destroy_handle_payload_result(&again);
        destroy_handle_payload_result(&r);
        destroy_send_content_result(&sent);
        destroy_send_content_result(&sent); /* zeroed: harmless */
    }

    /* list_conversations through a trailing out pointer, destroy by pointer (the Nim shapes). */
    ListConvoResult list;
    memset(&list, 0x5A, sizeof list);
    list_conversations(saro, &list);
    CHECK(list.error_code == None && list.convo_ids.len == 1);
    CHECK(list.convo_ids.len == 1 && eq(list.convo_ids.ptr[0].ptr, list.convo_ids.ptr[0].len, "") == 0);
    destroy_list_result(&list);
    destroy_list_result(&list);

    /* Error codes. */
    CreateIntroResult bad_intro;
    NewConvoResult bad_convo;
    create_new_private_convo(saro, slice("not a bundle", 12), slice("x", 1), &bad_convo);
    CHECK(bad_convo.error_code == BadIntro);
    destroy_convo_result(&bad_convo);
    SendContentResult bad_send;
    send_content(saro, borrowed("unknown-conversation"), slice("x", 1), &bad_send);
    CHECK(bad_send.error_code == BadConvoId || bad_send.error_code == UnknownError);
    destroy_send_content_result(&bad_send);
    create_intro_bundle(NULL, &bad_intro);
    CHECK(bad_intro.error_code == BadPtr);
    destroy_intro_result(&bad_intro);
    HandlePayloadResult bad_payload;
    handle_payload(raya, slice(NULL, 8), &bad_payload); /* NULL with a length: BadPtr, no crash */
    CHECK(bad_payload.error_code == BadPtr);
    destroy_handle_payload_result(&bad_payload);
    handle_payload(raya, slice(NULL, 0), &bad_payload); /* what Nim passes for an empty seq */
    CHECK(bad_payload.error_code == None && bad_payload.content.len == 0);
    destroy_handle_payload_result(&bad_payload);

    destroy_handle_payload_result(&got);
    destroy_convo_result(&convo);
    destroy_intro_result(&intro);
    destroy_context(saro);
    destroy_context(raya);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
