/*
 * Exercises every function exported by liblibchat (drop-in, persistent and batch), each with bad
 * input: NULL handles, NULL pointers with a non-zero length, NULL outputs, invalid UTF-8,
 * oversized inputs, double destroy of a zeroed result, wrong key, newer schema, a file that is
 * not a database, unknown conversations, bad bundles. Run under valgrind by .ci/ffi.
 *
 *   full TMPDIR LEGACY_PLAIN_DB
 *
 * With LIBCHAT_FFI_POSTGRES_URL set (a database of its own; .ci/ffi creates one), the PostgreSQL
 * functions are exercised on it too (the library must be built with the `postgres` feature);
 * without it only their argument errors are checked.
 *
 * Linked against liblibchat.a; uses the bundled SQLite's sqlite3_open/exec/close only to make a
 * database look migrated by a newer libchat.
 */
#include "libchat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* From the SQLite amalgamation linked into liblibchat.a. */
typedef struct sqlite3 sqlite3;
int sqlite3_open(const char *filename, sqlite3 **db);
int sqlite3_exec(sqlite3 *db, const char *sql, void *callback, void *arg, char **errmsg);
int sqlite3_close(sqlite3 *db);

static int checks = 0;
static int failures = 0;

#define CHECK(cond)                                                                  \
    do {                                                                             \
        checks++;                                                                    \
        if (!(cond)) {                                                               \
            failures++;                                                              \
            fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond); \
        }                                                                            \
    } while (0)

/* A persistent call's status must be `code`, and the last error must agree. */
#define CHECK_STATUS(call, code)                                                             \
    do {                                                                                     \
        int32_t status_ = (call);                                                            \
        checks++;                                                                            \
        if (status_ != (code) || libchat_last_error_code() != (code)) {                      \
            failures++;                                                                      \
            fprintf(stderr, "%s:%d: %s returned %d (last error %d), expected %d (%s)\n",     \
                    __FILE__, __LINE__, #call, status_, libchat_last_error_code(), (code),   \
                    #code);                                                                  \
            print_last_error();                                                              \
        }                                                                                    \
    } while (0)

#define LIT(s) ((const uint8_t *)(s)), (sizeof(s) - 1)
#define SLICE(p, n) ((LibchatSlice){(const uint8_t *)(p), (n)})
#define IN_STR(s) ((LibchatString){(char *)(s), strlen(s), 0})

static void print_last_error(void) {
    LibchatString msg;
    if (libchat_last_error_message(&msg) == LIBCHAT_OK && msg.len > 0) {
        fprintf(stderr, "    last error: %s\n", msg.ptr);
    }
    libchat_string_free(&msg);
}

static int str_eq(const LibchatString *s, const char *text) {
    return s->ptr != NULL && s->len == strlen(text) && memcmp(s->ptr, text, s->len) == 0 &&
           s->ptr[s->len] == '\0';
}

static int bytes_eq(const LibchatBytes *b, const char *text) {
    return b->len == strlen(text) && (b->len == 0 || memcmp(b->ptr, text, b->len) == 0);
}

static int is_zero(const void *p, size_t n) {
    const unsigned char *c = p;
    for (size_t i = 0; i < n; i++)
        if (c[i] != 0) return 0;
    return 1;
}

/* The whole file, to check that a refused open changed nothing. */
static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc(n > 0 ? (size_t)n : 1);
    *len = fread(buf, 1, (size_t)n, f);
    fclose(f);
    return buf;
}

static int file_unchanged(const char *path, const unsigned char *before, size_t before_len) {
    size_t len = 0;
    unsigned char *now = read_file(path, &len);
    int same = now && len == before_len && memcmp(now, before, len) == 0;
    free(now);
    return same;
}

static const uint8_t KEY_A[32] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16,
                                  17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32};
static const uint8_t KEY_B[32] = {9};
static const uint8_t BAD_UTF8[] = {'a', 0xff, 'b'};

static char tmp[4096];
static char path_buf[4][4200];

static const char *tmp_path(int slot, const char *name) {
    snprintf(path_buf[slot], sizeof path_buf[slot], "%s/%s", tmp, name);
    return path_buf[slot];
}

static ContextHandle *open_file(const char *path, const uint8_t *key, size_t key_len,
                                int32_t kind, const char *name) {
    ContextHandle *h = (ContextHandle *)0x1; /* garbage: must be overwritten */
    int32_t status = libchat_open((const uint8_t *)path, strlen(path), key, key_len, kind,
                                  LIBCHAT_DURABILITY_NORMAL, (const uint8_t *)name,
                                  name ? strlen(name) : 0, &h);
    if (status != LIBCHAT_OK) {
        fprintf(stderr, "libchat_open(%s) failed with %d\n", path, status);
        print_last_error();
        CHECK(h == NULL);
        return NULL;
    }
    return h;
}

/* ------------------------------------------------------------------------------------------ */

static void test_version_and_errors(void) {
    const char *v = libchat_version();
    CHECK(v != NULL && strlen(v) > 0 && strchr(v, '.') != NULL);
    CHECK(libchat_abi_version() == LIBCHAT_ABI_VERSION);

    CHECK(libchat_last_error_message(NULL) == LIBCHAT_ERR_NULL_POINTER);
    /* After a success the last error is cleared and its message is empty. */
    LibchatString bundle;
    ContextHandle *c = create_context(IN_STR("tmp"));
    CHECK(c != NULL);
    CHECK_STATUS(libchat_intro_bundle(c, &bundle), LIBCHAT_OK);
    LibchatString msg;
    CHECK(libchat_last_error_message(&msg) == LIBCHAT_OK);
    CHECK(msg.ptr != NULL && msg.len == 0 && msg.ptr[0] == '\0');
    libchat_string_free(&msg);
    CHECK(is_zero(&msg, sizeof msg));
    libchat_string_free(&msg); /* zeroed: harmless */
    libchat_string_free(NULL);
    libchat_string_free(&bundle);
    destroy_context(c);
    destroy_context(NULL);
}

/* The drop-in surface on two (or three) handles of any kind. */
static void dropin_conversation(ContextHandle *saro, ContextHandle *raya, ContextHandle *ravi) {
    CreateIntroResult intro;
    memset(&intro, 0xAB, sizeof intro); /* *out is written without being read */
    create_intro_bundle(raya, &intro);
    CHECK(intro.error_code == ERROR_NONE);
    CHECK(intro.intro_bytes.len > 18 && memcmp(intro.intro_bytes.ptr, "logos_chatintro_1_", 18) == 0);

    /* Saro starts a conversation. */
    NewConvoResult convo;
    memset(&convo, 0xAB, sizeof convo);
    create_new_private_convo(saro, SLICE(intro.intro_bytes.ptr, intro.intro_bytes.len),
                             SLICE("hello raya", 10), &convo);
    CHECK(convo.error_code == ERROR_NONE);
    CHECK(convo.convo_id.len > 0);
    CHECK(convo.payloads.len == 1);
    CHECK(str_eq(&convo.payloads.ptr[0].address, "delivery_address"));

    /* Raya receives it. */
    HandlePayloadResult got;
    memset(&got, 0xAB, sizeof got);
    handle_payload(raya, SLICE(convo.payloads.ptr[0].data.ptr, convo.payloads.ptr[0].data.len), &got);
    CHECK(got.error_code == ERROR_NONE);
    CHECK(bytes_eq(&got.content, "hello raya"));
    CHECK(got.is_new_convo);
    CHECK(got.convo_id.len > 0);

    /* The same envelope again: processed, nothing for the application. */
    HandlePayloadResult dup;
    handle_payload(raya, SLICE(convo.payloads.ptr[0].data.ptr, convo.payloads.ptr[0].data.len), &dup);
    CHECK(dup.error_code == ERROR_NONE && dup.content.len == 0);
    destroy_handle_payload_result(&dup);

    /* Raya answers in the conversation, by the id handle_payload gave. */
    SendContentResult reply;
    memset(&reply, 0xAB, sizeof reply);
    LibchatString raya_convo = {got.convo_id.ptr, got.convo_id.len, 0};
    send_content(raya, raya_convo, SLICE("hi saro", 7), &reply);
    CHECK(reply.error_code == ERROR_NONE);
    CHECK(reply.payloads.len == 1 && str_eq(&reply.payloads.ptr[0].address, "delivery_address"));
    HandlePayloadResult back;
    handle_payload(saro, SLICE(reply.payloads.ptr[0].data.ptr, reply.payloads.ptr[0].data.len), &back);
    CHECK(back.error_code == ERROR_NONE && bytes_eq(&back.content, "hi saro") && !back.is_new_convo);
    CHECK(back.convo_id.len == convo.convo_id.len &&
          memcmp(back.convo_id.ptr, convo.convo_id.ptr, back.convo_id.len) == 0);
    destroy_handle_payload_result(&back);

    /* Saro sends by the id create_new_private_convo gave. */
    SendContentResult more;
    LibchatString saro_convo = {convo.convo_id.ptr, convo.convo_id.len, 0};
    send_content(saro, saro_convo, SLICE("again", 5), &more);
    CHECK(more.error_code == ERROR_NONE);
    HandlePayloadResult again;
    handle_payload(raya, SLICE(more.payloads.ptr[0].data.ptr, more.payloads.ptr[0].data.len), &again);
    CHECK(again.error_code == ERROR_NONE && bytes_eq(&again.content, "again"));
    destroy_handle_payload_result(&again);
    destroy_send_content_result(&more);

    /* An envelope addressed to another installation: success, nothing for the application. */
    CreateIntroResult ravi_intro;
    create_intro_bundle(ravi, &ravi_intro);
    NewConvoResult to_ravi;
    create_new_private_convo(saro, SLICE(ravi_intro.intro_bytes.ptr, ravi_intro.intro_bytes.len),
                             SLICE("for ravi", 8), &to_ravi);
    CHECK(to_ravi.error_code == ERROR_NONE);
    HandlePayloadResult not_mine;
    handle_payload(raya, SLICE(to_ravi.payloads.ptr[0].data.ptr, to_ravi.payloads.ptr[0].data.len), &not_mine);
    CHECK(not_mine.error_code == ERROR_NONE && not_mine.content.len == 0);
    destroy_handle_payload_result(&not_mine);
    destroy_convo_result(&to_ravi);
    destroy_intro_result(&ravi_intro);

    /* list_conversations: Raya has one, with the id handle_payload gave. */
    ListConvoResult list;
    memset(&list, 0xAB, sizeof list);
    list_conversations(raya, &list);
    CHECK(list.error_code == ERROR_NONE && list.convo_ids.len == 1);
    CHECK(list.convo_ids.len == 1 && list.convo_ids.ptr[0].len == got.convo_id.len &&
          memcmp(list.convo_ids.ptr[0].ptr, got.convo_id.ptr, got.convo_id.len) == 0);
    destroy_list_result(&list);
    CHECK(is_zero(&list, sizeof list));
    destroy_list_result(&list);

    /* ---- error paths ---- */
    CreateIntroResult bad_intro;
    create_intro_bundle(NULL, &bad_intro);
    CHECK(bad_intro.error_code == ERROR_BAD_PTR);
    CHECK(libchat_last_error_code() == LIBCHAT_ERR_NULL_POINTER);
    destroy_intro_result(&bad_intro);
    create_intro_bundle(raya, NULL); /* nowhere to report: sets the last error only */
    CHECK(libchat_last_error_code() == LIBCHAT_ERR_NULL_POINTER);

    NewConvoResult bad;
    create_new_private_convo(NULL, SLICE(intro.intro_bytes.ptr, intro.intro_bytes.len), SLICE("x", 1), &bad);
    CHECK(bad.error_code == ERROR_BAD_PTR);
    create_new_private_convo(saro, SLICE("logos_chatintro_1_AAAA", 22), SLICE("x", 1), &bad);
    CHECK(bad.error_code == ERROR_BAD_INTRO && libchat_last_error_code() == LIBCHAT_ERR_BAD_BUNDLE);
    create_new_private_convo(saro, SLICE(BAD_UTF8, sizeof BAD_UTF8), SLICE("x", 1), &bad);
    CHECK(bad.error_code == ERROR_BAD_INTRO);
    create_new_private_convo(saro, SLICE(NULL, 10), SLICE("x", 1), &bad);
    CHECK(bad.error_code == ERROR_BAD_PTR);
    create_new_private_convo(saro, SLICE(NULL, 0), SLICE("x", 1), &bad);
    CHECK(bad.error_code == ERROR_BAD_INTRO); /* an empty bundle */
    CreateIntroResult intro2;
    create_intro_bundle(raya, &intro2);
    create_new_private_convo(saro, SLICE(intro2.intro_bytes.ptr, intro2.intro_bytes.len), SLICE(NULL, 3), &bad);
    CHECK(bad.error_code == ERROR_BAD_PTR);
    size_t big_len = LIBCHAT_MAX_CONTENT_LEN + 1;
    uint8_t *big = calloc(1, LIBCHAT_MAX_ENVELOPE_LEN + 1);
    create_new_private_convo(saro, SLICE(intro2.intro_bytes.ptr, intro2.intro_bytes.len), SLICE(big, big_len), &bad);
    CHECK(bad.error_code == ERROR_BUFFER_EXCEEDED);
    CHECK(bad.convo_id.ptr == NULL && bad.payloads.ptr == NULL);
    destroy_convo_result(&bad);
    destroy_intro_result(&intro2);
    create_new_private_convo(saro, SLICE("x", 1), SLICE("x", 1), NULL);
    CHECK(libchat_last_error_code() == LIBCHAT_ERR_NULL_POINTER);

    SendContentResult bad_send;
    send_content(NULL, saro_convo, SLICE("x", 1), &bad_send);
    CHECK(bad_send.error_code == ERROR_BAD_PTR);
    send_content(saro, IN_STR("no-such-conversation"), SLICE("x", 1), &bad_send);
    CHECK(bad_send.error_code == ERROR_BAD_CONVO_ID);
    CHECK(libchat_last_error_code() == LIBCHAT_ERR_UNKNOWN_CONVERSATION);
    send_content(saro, (LibchatString){(char *)BAD_UTF8, sizeof BAD_UTF8, 0}, SLICE("x", 1), &bad_send);
    CHECK(bad_send.error_code == ERROR_BAD_CONVO_ID);
    send_content(saro, (LibchatString){NULL, 5, 0}, SLICE("x", 1), &bad_send);
    CHECK(bad_send.error_code == ERROR_BAD_PTR);
    send_content(saro, saro_convo, SLICE(NULL, 1), &bad_send);
    CHECK(bad_send.error_code == ERROR_BAD_PTR);
    send_content(saro, saro_convo, SLICE(big, big_len), &bad_send);
    CHECK(bad_send.error_code == ERROR_BUFFER_EXCEEDED);
    destroy_send_content_result(&bad_send);
    send_content(saro, saro_convo, SLICE("x", 1), NULL);
    CHECK(libchat_last_error_code() == LIBCHAT_ERR_NULL_POINTER);

    HandlePayloadResult bad_payload;
    handle_payload(NULL, SLICE("x", 1), &bad_payload);
    CHECK(bad_payload.error_code == ERROR_BAD_PTR);
    handle_payload(raya, SLICE(NULL, 4), &bad_payload);
    CHECK(bad_payload.error_code == ERROR_BAD_PTR);
    handle_payload(raya, SLICE("garbage!", 8), &bad_payload);
    CHECK(bad_payload.error_code == ERROR_UNKNOWN);
    CHECK(libchat_last_error_code() <= -100);
    handle_payload(raya, SLICE(big, LIBCHAT_MAX_ENVELOPE_LEN + 1), &bad_payload);
    CHECK(bad_payload.error_code == ERROR_BUFFER_EXCEEDED);
    handle_payload(raya, SLICE(NULL, 0), &bad_payload); /* empty: nothing for the application */
    CHECK(bad_payload.error_code == ERROR_NONE && bad_payload.content.len == 0);
    destroy_handle_payload_result(&bad_payload);
    handle_payload(raya, SLICE("x", 1), NULL);
    CHECK(libchat_last_error_code() == LIBCHAT_ERR_NULL_POINTER);
    free(big);

    ListConvoResult bad_list;
    list_conversations(NULL, &bad_list);
    CHECK(bad_list.error_code == ERROR_BAD_PTR);
    destroy_list_result(&bad_list);
    list_conversations(raya, NULL);
    CHECK(libchat_last_error_code() == LIBCHAT_ERR_NULL_POINTER);

    /* Double destroy of zeroed results, and NULL. */
    destroy_send_content_result(&reply);
    CHECK(is_zero(&reply, sizeof reply));
    destroy_send_content_result(&reply);
    destroy_handle_payload_result(&got);
    CHECK(is_zero(&got, sizeof got));
    destroy_handle_payload_result(&got);
    destroy_convo_result(&convo);
    CHECK(is_zero(&convo, sizeof convo));
    destroy_convo_result(&convo);
    destroy_intro_result(&intro);
    CHECK(is_zero(&intro, sizeof intro));
    destroy_intro_result(&intro);
    destroy_intro_result(NULL);
    destroy_convo_result(NULL);
    destroy_send_content_result(NULL);
    destroy_handle_payload_result(NULL);
    destroy_list_result(NULL);
}

static void test_dropin_in_memory(void) {
    ContextHandle *saro = create_context(IN_STR("saro"));
    ContextHandle *raya = create_context((LibchatString){(char *)"raya", 4, 99}); /* cap ignored */
    ContextHandle *ravi = create_context((LibchatString){NULL, 0, 0});           /* empty name */
    CHECK(saro && raya && ravi);

    LibchatString name = installation_name(saro);
    CHECK(str_eq(&name, "saro"));
    destroy_string(name);
    name = installation_name(ravi);
    CHECK(name.ptr != NULL && name.len == 0);
    destroy_string(name);
    name = installation_name(NULL);
    CHECK(name.ptr == NULL && name.len == 0 && libchat_last_error_code() == LIBCHAT_ERR_NULL_POINTER);
    destroy_string(name); /* {NULL, 0, 0}: harmless */

    CHECK(create_context((LibchatString){NULL, 5, 0}) == NULL);
    CHECK(libchat_last_error_code() == LIBCHAT_ERR_NULL_POINTER);
    CHECK(create_context((LibchatString){(char *)BAD_UTF8, sizeof BAD_UTF8, 0}) == NULL);
    CHECK(libchat_last_error_code() == LIBCHAT_ERR_INVALID_UTF8);

    dropin_conversation(saro, raya, ravi);
    destroy_context(saro);
    destroy_context(raya);
    destroy_context(ravi);
}

/* The drop-in functions on persistent handles; a drop-in user's outbox and inbox stay empty. */
static void test_dropin_on_persistent_handles(void) {
    ContextHandle *saro = open_file(tmp_path(0, "dropin-saro.db"), KEY_A, 32, LIBCHAT_KEY_RAW, "saro");
    ContextHandle *raya = open_file(tmp_path(1, "dropin-raya.db"), NULL, 0, LIBCHAT_KEY_NONE, "raya");
    ContextHandle *ravi = create_context(IN_STR("ravi"));
    CHECK(saro && raya && ravi);
    LibchatString name = installation_name(raya);
    CHECK(str_eq(&name, "raya"));
    destroy_string(name);

    dropin_conversation(saro, raya, ravi);

    LibchatOutbox outbox;
    CHECK_STATUS(libchat_outbox_pending(saro, 100, &outbox), LIBCHAT_OK);
    CHECK(outbox.len == 0);
    libchat_outbox_free(&outbox);
    CHECK_STATUS(libchat_outbox_pending(raya, 100, &outbox), LIBCHAT_OK);
    CHECK(outbox.len == 0);
    libchat_outbox_free(&outbox);
    LibchatInbox inbox;
    CHECK_STATUS(libchat_inbox_pending(raya, 100, &inbox), LIBCHAT_OK);
    CHECK(inbox.len == 0);
    libchat_inbox_free(&inbox);
    CHECK_STATUS(libchat_inbox_pending(saro, 100, &inbox), LIBCHAT_OK);
    CHECK(inbox.len == 0);
    libchat_inbox_free(&inbox);

    /* The history keeps what the drop-in calls sent and received. */
    LibchatConversations convos;
    CHECK_STATUS(libchat_conversations(raya, &convos), LIBCHAT_OK);
    CHECK(convos.len == 1);
    LibchatHistory history;
    CHECK_STATUS(libchat_history(raya, (const uint8_t *)convos.ptr[0].id.ptr, convos.ptr[0].id.len, 10, &history), LIBCHAT_OK);
    CHECK(history.len == 3);
    libchat_history_free(&history);
    libchat_conversations_free(&convos);

    libchat_close(&saro);
    libchat_close(&raya);
    destroy_context(ravi);
}

static void test_open_errors(void) {
    ContextHandle *h = (ContextHandle *)0x1;
    const char *p = tmp_path(0, "errors.db");
    size_t n = strlen(p);

    CHECK_STATUS(libchat_open(LIT("x.db"), NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, NULL, 0, NULL),
                 LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_open(NULL, 4, NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_NULL_POINTER);
    CHECK(h == NULL);
    CHECK_STATUS(libchat_open(NULL, 0, NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open(LIT(":memory:"), NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open(LIT("file:x.db?mode=memory"), NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open(BAD_UTF8, sizeof BAD_UTF8, NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_open(LIT("a\0b.db"), NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, NULL, 0, 7, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, KEY_A, 31, LIBCHAT_KEY_RAW, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, NULL, 32, LIBCHAT_KEY_RAW, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, KEY_A, 32, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, NULL, 0, LIBCHAT_KEY_PASSPHRASE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, BAD_UTF8, sizeof BAD_UTF8, LIBCHAT_KEY_PASSPHRASE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, LIT("pass\0word"), LIBCHAT_KEY_PASSPHRASE, LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, NULL, 0, LIBCHAT_KEY_NONE, 5, NULL, 0, &h),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, BAD_UTF8, sizeof BAD_UTF8, &h),
                 LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_open((const uint8_t *)p, n, NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_FULL, NULL, 3, &h),
                 LIBCHAT_ERR_NULL_POINTER);
    const char *missing_dir = tmp_path(1, "no/such/dir/x.db");
    CHECK_STATUS(libchat_open((const uint8_t *)missing_dir, strlen(missing_dir), NULL, 0, LIBCHAT_KEY_NONE,
                              LIBCHAT_DURABILITY_FULL, NULL, 0, &h),
                 LIBCHAT_ERR_CANNOT_OPEN);
    CHECK(h == NULL);
    LibchatString msg;
    libchat_last_error_message(&msg);
    CHECK(msg.len > 0);
    libchat_string_free(&msg);

    /* libchat_close: NULL, pointer to NULL. */
    libchat_close(NULL);
    h = NULL;
    libchat_close(&h);
}

/* Wrong key, no key, key on a plain file, a file that is not a database: refused, untouched. */
static void test_keys_and_foreign_files(void) {
    const char *enc = tmp_path(0, "encrypted.db");
    const char *plain = tmp_path(1, "plain.db");
    ContextHandle *h = open_file(enc, KEY_A, 32, LIBCHAT_KEY_RAW, "enc");
    CHECK(h != NULL);
    libchat_close(&h);
    CHECK(h == NULL);
    libchat_close(&h);
    h = open_file(plain, NULL, 0, LIBCHAT_KEY_NONE, "plain");
    libchat_close(&h);

    size_t enc_len = 0, plain_len = 0;
    unsigned char *enc_bytes = read_file(enc, &enc_len);
    unsigned char *plain_bytes = read_file(plain, &plain_len);
    CHECK(enc_bytes && plain_bytes);

    ContextHandle *out = (ContextHandle *)0x1;
    CHECK_STATUS(libchat_open((const uint8_t *)enc, strlen(enc), KEY_B, 32, LIBCHAT_KEY_RAW,
                              LIBCHAT_DURABILITY_FULL, NULL, 0, &out),
                 LIBCHAT_ERR_WRONG_KEY);
    CHECK(out == NULL);
    CHECK_STATUS(libchat_open((const uint8_t *)enc, strlen(enc), NULL, 0, LIBCHAT_KEY_NONE,
                              LIBCHAT_DURABILITY_FULL, NULL, 0, &out),
                 LIBCHAT_ERR_WRONG_KEY);
    CHECK_STATUS(libchat_open((const uint8_t *)plain, strlen(plain), KEY_A, 32, LIBCHAT_KEY_RAW,
                              LIBCHAT_DURABILITY_FULL, NULL, 0, &out),
                 LIBCHAT_ERR_WRONG_KEY);
    CHECK(file_unchanged(enc, enc_bytes, enc_len));
    CHECK(file_unchanged(plain, plain_bytes, plain_len));

    /* A file that is not a database at all. */
    const char *text = tmp_path(2, "notes.txt");
    FILE *f = fopen(text, "wb");
    for (int i = 0; i < 200; i++) fputs("not a database, just some text\n", f);
    fclose(f);
    size_t text_len = 0;
    unsigned char *text_bytes = read_file(text, &text_len);
    CHECK_STATUS(libchat_open((const uint8_t *)text, strlen(text), NULL, 0, LIBCHAT_KEY_NONE,
                              LIBCHAT_DURABILITY_FULL, NULL, 0, &out),
                 LIBCHAT_ERR_WRONG_KEY);
    CHECK(file_unchanged(text, text_bytes, text_len));
    LibchatSchemaStatus st;
    CHECK_STATUS(libchat_schema_status((const uint8_t *)text, strlen(text), NULL, 0, LIBCHAT_KEY_NONE, &st),
                 LIBCHAT_ERR_WRONG_KEY);
    libchat_schema_status_free(&st);
    free(text_bytes);

    /* Another application's SQLite database: refused, not one byte changed. */
    const char *foreign = tmp_path(2, "foreign.db");
    sqlite3 *other = NULL;
    CHECK(sqlite3_open(foreign, &other) == 0);
    CHECK(sqlite3_exec(other, "CREATE TABLE users (id INTEGER); INSERT INTO users VALUES (1);",
                       NULL, NULL, NULL) == 0);
    sqlite3_close(other);
    size_t foreign_len = 0;
    unsigned char *foreign_bytes = read_file(foreign, &foreign_len);
    CHECK_STATUS(libchat_open((const uint8_t *)foreign, strlen(foreign), NULL, 0, LIBCHAT_KEY_NONE,
                              LIBCHAT_DURABILITY_FULL, NULL, 0, &out),
                 LIBCHAT_ERR_FOREIGN_DATABASE);
    CHECK(out == NULL);
    CHECK_STATUS(libchat_schema_status((const uint8_t *)foreign, strlen(foreign), NULL, 0, LIBCHAT_KEY_NONE, &st),
                 LIBCHAT_ERR_FOREIGN_DATABASE);
    libchat_schema_status_free(&st);
    CHECK(file_unchanged(foreign, foreign_bytes, foreign_len));
    free(foreign_bytes);

    /* Schema status of a current database; wrong key; missing file; argument errors. */
    memset(&st, 0xAB, sizeof st);
    CHECK_STATUS(libchat_schema_status((const uint8_t *)enc, strlen(enc), KEY_A, 32, LIBCHAT_KEY_RAW, &st), LIBCHAT_OK);
    CHECK(st.is_current && !st.is_newer_than_library && st.applied.len > 0 && st.pending.len == 0 &&
          st.unknown_applied.len == 0);
    libchat_schema_status_free(&st);
    CHECK(is_zero(&st, sizeof st));
    libchat_schema_status_free(&st);
    libchat_schema_status_free(NULL);
    CHECK_STATUS(libchat_schema_status((const uint8_t *)enc, strlen(enc), KEY_B, 32, LIBCHAT_KEY_RAW, &st),
                 LIBCHAT_ERR_WRONG_KEY);
    const char *missing = tmp_path(2, "missing.db");
    CHECK_STATUS(libchat_schema_status((const uint8_t *)missing, strlen(missing), NULL, 0, LIBCHAT_KEY_NONE, &st),
                 LIBCHAT_ERR_NOT_FOUND);
    CHECK(fopen(missing, "rb") == NULL); /* not created */
    CHECK_STATUS(libchat_schema_status(NULL, 3, NULL, 0, LIBCHAT_KEY_NONE, &st), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_schema_status(BAD_UTF8, sizeof BAD_UTF8, NULL, 0, LIBCHAT_KEY_NONE, &st), LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_schema_status((const uint8_t *)enc, strlen(enc), KEY_A, 3, LIBCHAT_KEY_RAW, &st),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_schema_status((const uint8_t *)enc, strlen(enc), KEY_A, 32, LIBCHAT_KEY_RAW, NULL),
                 LIBCHAT_ERR_NULL_POINTER);

    /* Newer schema: a migration this library does not know. */
    sqlite3 *db = NULL;
    CHECK(sqlite3_open(plain, &db) == 0);
    CHECK(sqlite3_exec(db, "INSERT INTO __diesel_schema_migrations (version) VALUES ('99991231000000')",
                       NULL, NULL, NULL) == 0);
    sqlite3_close(db);
    free(plain_bytes);
    plain_bytes = read_file(plain, &plain_len);
    CHECK_STATUS(libchat_open((const uint8_t *)plain, strlen(plain), NULL, 0, LIBCHAT_KEY_NONE,
                              LIBCHAT_DURABILITY_FULL, NULL, 0, &out),
                 LIBCHAT_ERR_NEWER_SCHEMA);
    CHECK(out == NULL);
    CHECK(file_unchanged(plain, plain_bytes, plain_len));
    CHECK_STATUS(libchat_schema_status((const uint8_t *)plain, strlen(plain), NULL, 0, LIBCHAT_KEY_NONE, &st), LIBCHAT_OK);
    CHECK(st.is_newer_than_library && !st.is_current && st.unknown_applied.len == 1 &&
          str_eq(&st.unknown_applied.ptr[0], "99991231000000"));
    libchat_schema_status_free(&st);

    free(enc_bytes);
    free(plain_bytes);
}

/* The one passphrase case (each open costs 256,000 PBKDF2 iterations). */
static void test_passphrase(void) {
    const char *p = tmp_path(0, "passphrase.db");
    ContextHandle *h = open_file(p, LIT("correct horse"), LIBCHAT_KEY_PASSPHRASE, "pp");
    CHECK(h != NULL);
    libchat_close(&h);
    ContextHandle *out = NULL;
    CHECK_STATUS(libchat_open((const uint8_t *)p, strlen(p), LIT("battery staple"), LIBCHAT_KEY_PASSPHRASE,
                              LIBCHAT_DURABILITY_FULL, NULL, 0, &out),
                 LIBCHAT_ERR_WRONG_KEY);
    LibchatString msg;
    libchat_last_error_message(&msg);
    CHECK(msg.len > 0 && strstr(msg.ptr, "battery") == NULL && strstr(msg.ptr, "horse") == NULL);
    libchat_string_free(&msg);
}

static void test_persistent(void) {
    const char *alice_path = tmp_path(0, "alice.db");
    const char *bob_path = tmp_path(1, "bob.db");
    ContextHandle *alice = open_file(alice_path, KEY_A, 32, LIBCHAT_KEY_RAW, "alice");
    ContextHandle *bob = open_file(bob_path, NULL, 0, LIBCHAT_KEY_NONE, "bob");
    ContextHandle *carol = create_context(IN_STR("carol"));
    CHECK(alice && bob && carol);

    LibchatString bundle;
    memset(&bundle, 0xAB, sizeof bundle);
    CHECK_STATUS(libchat_intro_bundle(bob, &bundle), LIBCHAT_OK);
    CHECK(bundle.len > 18 && strncmp(bundle.ptr, "logos_chatintro_1_", 18) == 0 && bundle.ptr[bundle.len] == 0);

    /* Alice starts; her outbox holds the envelope until she marks it delivered. */
    LibchatSent sent;
    memset(&sent, 0xAB, sizeof sent);
    CHECK_STATUS(libchat_start_conversation(alice, (const uint8_t *)bundle.ptr, bundle.len, LIT("hi bob"), &sent),
                 LIBCHAT_OK);
    CHECK(sent.conversation_id.len > 0 && sent.envelope.len > 0 && str_eq(&sent.delivery_address, "delivery_address"));
    LibchatOutbox outbox;
    memset(&outbox, 0xAB, sizeof outbox);
    CHECK_STATUS(libchat_outbox_pending(alice, 10, &outbox), LIBCHAT_OK);
    CHECK(outbox.len == 1 && outbox.ptr[0].id == sent.outbox_id &&
          outbox.ptr[0].envelope.len == sent.envelope.len &&
          memcmp(outbox.ptr[0].envelope.ptr, sent.envelope.ptr, sent.envelope.len) == 0 &&
          outbox.ptr[0].created_at_ms > 0 && outbox.ptr[0].conversation_hint.len > 0 &&
          str_eq(&outbox.ptr[0].delivery_address, "delivery_address") &&
          outbox.ptr[0].conversation_id.len == sent.conversation_id.len);
    libchat_outbox_free(&outbox);
    CHECK(is_zero(&outbox, sizeof outbox));
    libchat_outbox_free(&outbox);
    libchat_outbox_free(NULL);
    CHECK_STATUS(libchat_outbox_pending(alice, 0, &outbox), LIBCHAT_OK);
    CHECK(outbox.len == 0 && outbox.ptr == NULL);

    /* Bob receives: content, stored in his inbox until acknowledged. */
    LibchatReceived rcv;
    memset(&rcv, 0xAB, sizeof rcv);
    CHECK_STATUS(libchat_receive(bob, sent.envelope.ptr, sent.envelope.len, &rcv), LIBCHAT_OK);
    CHECK(rcv.kind == LIBCHAT_RECEIVED_CONTENT && rcv.is_new_conversation && bytes_eq(&rcv.content, "hi bob") &&
          rcv.inbox_id > 0 && rcv.sent_at_ms > 0 && rcv.conversation_id.len > 0 && rcv.hint.ptr == NULL);
    char bob_convo[128];
    size_t bob_convo_len = rcv.conversation_id.len;
    memcpy(bob_convo, rcv.conversation_id.ptr, bob_convo_len);
    int64_t inbox_id = rcv.inbox_id;
    libchat_received_free(&rcv);
    CHECK(is_zero(&rcv, sizeof rcv));
    libchat_received_free(&rcv);
    libchat_received_free(NULL);

    /* The same envelope again: a duplicate. */
    CHECK_STATUS(libchat_receive(bob, sent.envelope.ptr, sent.envelope.len, &rcv), LIBCHAT_OK);
    CHECK(rcv.kind == LIBCHAT_RECEIVED_DUPLICATE);
    libchat_received_free(&rcv);
    CHECK_STATUS(libchat_receive(bob, NULL, 0, &rcv), LIBCHAT_OK);
    CHECK(rcv.kind == LIBCHAT_RECEIVED_EMPTY);

    bool was_pending = false;
    CHECK_STATUS(libchat_mark_delivered(alice, sent.outbox_id, &was_pending), LIBCHAT_OK);
    CHECK(was_pending);
    CHECK_STATUS(libchat_mark_delivered(alice, sent.outbox_id, &was_pending), LIBCHAT_OK);
    CHECK(!was_pending);
    CHECK_STATUS(libchat_outbox_pending(alice, 10, &outbox), LIBCHAT_OK);
    CHECK(outbox.len == 0);
    libchat_outbox_free(&outbox);

    LibchatInbox inbox;
    memset(&inbox, 0xAB, sizeof inbox);
    CHECK_STATUS(libchat_inbox_pending(bob, 10, &inbox), LIBCHAT_OK);
    CHECK(inbox.len == 1 && inbox.ptr[0].id == inbox_id && bytes_eq(&inbox.ptr[0].content, "hi bob") &&
          inbox.ptr[0].is_new_conversation && inbox.ptr[0].received_at_ms > 0 && inbox.ptr[0].sent_at_ms > 0 &&
          inbox.ptr[0].conversation_id.len == bob_convo_len);
    libchat_inbox_free(&inbox);
    CHECK(is_zero(&inbox, sizeof inbox));
    libchat_inbox_free(&inbox);
    libchat_inbox_free(NULL);
    CHECK_STATUS(libchat_acknowledge(bob, inbox_id, &was_pending), LIBCHAT_OK);
    CHECK(was_pending);
    CHECK_STATUS(libchat_acknowledge(bob, inbox_id, &was_pending), LIBCHAT_OK);
    CHECK(!was_pending);
    /* The durability barrier (bob is Normal: it syncs the receive and the acknowledgement;
       again: nothing to sync; carol is in memory: nothing to do). */
    CHECK_STATUS(libchat_sync(bob), LIBCHAT_OK);
    CHECK_STATUS(libchat_sync(bob), LIBCHAT_OK);
    CHECK_STATUS(libchat_sync(carol), LIBCHAT_OK);
    CHECK_STATUS(libchat_sync(NULL), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_inbox_pending(bob, 10, &inbox), LIBCHAT_OK);
    CHECK(inbox.len == 0);
    libchat_inbox_free(&inbox);

    /* Bob answers. */
    LibchatSent reply;
    CHECK_STATUS(libchat_send(bob, (const uint8_t *)bob_convo, bob_convo_len, LIT("hello alice"), &reply), LIBCHAT_OK);
    CHECK_STATUS(libchat_receive(alice, reply.envelope.ptr, reply.envelope.len, &rcv), LIBCHAT_OK);
    CHECK(rcv.kind == LIBCHAT_RECEIVED_CONTENT && !rcv.is_new_conversation && bytes_eq(&rcv.content, "hello alice") &&
          rcv.conversation_id.len == sent.conversation_id.len &&
          memcmp(rcv.conversation_id.ptr, sent.conversation_id.ptr, rcv.conversation_id.len) == 0);
    libchat_received_free(&rcv);

    /* An envelope for a conversation Alice does not have: Bob writes to Carol. */
    LibchatString carol_bundle;
    CHECK_STATUS(libchat_intro_bundle(carol, &carol_bundle), LIBCHAT_OK);
    LibchatSent to_carol;
    CHECK_STATUS(libchat_start_conversation(bob, (const uint8_t *)carol_bundle.ptr, carol_bundle.len, LIT("hi carol"), &to_carol),
                 LIBCHAT_OK);
    CHECK_STATUS(libchat_receive(alice, to_carol.envelope.ptr, to_carol.envelope.len, &rcv), LIBCHAT_OK);
    CHECK(rcv.kind == LIBCHAT_RECEIVED_UNKNOWN_CONVERSATION && rcv.hint.len > 0 && rcv.content.ptr == NULL);
    libchat_received_free(&rcv);
    /* Carol, who has it, gets it. */
    CHECK_STATUS(libchat_receive(carol, to_carol.envelope.ptr, to_carol.envelope.len, &rcv), LIBCHAT_OK);
    CHECK(rcv.kind == LIBCHAT_RECEIVED_CONTENT && bytes_eq(&rcv.content, "hi carol"));
    libchat_received_free(&rcv);
    libchat_sent_free(&to_carol);
    libchat_string_free(&carol_bundle);

    /* A tampered envelope is refused and changes nothing: the original still decrypts. */
    LibchatSent third;
    CHECK_STATUS(libchat_send(alice, (const uint8_t *)sent.conversation_id.ptr, sent.conversation_id.len, LIT("third"), &third),
                 LIBCHAT_OK);
    uint8_t *tampered = malloc(third.envelope.len);
    memcpy(tampered, third.envelope.ptr, third.envelope.len);
    tampered[third.envelope.len - 3] ^= 0x40;
    int32_t status = libchat_receive(bob, tampered, third.envelope.len, &rcv);
    CHECK(status != LIBCHAT_OK && status == libchat_last_error_code() && rcv.kind == 0);
    free(tampered);
    CHECK_STATUS(libchat_receive(bob, third.envelope.ptr, third.envelope.len, &rcv), LIBCHAT_OK);
    CHECK(rcv.kind == LIBCHAT_RECEIVED_CONTENT && bytes_eq(&rcv.content, "third"));
    libchat_received_free(&rcv);
    libchat_sent_free(&third);

    /* Conversations and history. */
    LibchatConversations convos;
    memset(&convos, 0xAB, sizeof convos);
    CHECK_STATUS(libchat_conversations(alice, &convos), LIBCHAT_OK);
    CHECK(convos.len == 1 && convos.ptr[0].id.len == sent.conversation_id.len && convos.ptr[0].peer_id.len > 0 &&
          convos.ptr[0].created_at_ms > 0);
    CHECK(convos.len == 1 && convos.ptr[0].peer_id.len == bob_convo_len &&
          memcmp(convos.ptr[0].peer_id.ptr, bob_convo, bob_convo_len) == 0);
    /* Who each conversation is with: the peer's installation key, on both sides. */
    uint8_t alice_key[32], bob_key[32], carol_key[32];
    memset(alice_key, 0xAB, sizeof alice_key);
    CHECK_STATUS(libchat_public_key(alice, &alice_key), LIBCHAT_OK);
    CHECK_STATUS(libchat_public_key(bob, &bob_key), LIBCHAT_OK);
    CHECK_STATUS(libchat_public_key(carol, &carol_key), LIBCHAT_OK); /* a drop-in handle too */
    CHECK(!is_zero(alice_key, 32) && memcmp(alice_key, bob_key, 32) != 0 && memcmp(bob_key, carol_key, 32) != 0);
    CHECK(convos.len == 1 && convos.ptr[0].has_peer_key && memcmp(convos.ptr[0].peer_key, bob_key, 32) == 0);
    libchat_conversations_free(&convos);
    CHECK(is_zero(&convos, sizeof convos));
    libchat_conversations_free(&convos);
    libchat_conversations_free(NULL);
    /* Bob has two: the one Alice started (he responded), the one he started with Carol. */
    CHECK_STATUS(libchat_conversations(bob, &convos), LIBCHAT_OK);
    CHECK(convos.len == 2);
    for (size_t i = 0; i < convos.len; i++) {
        const LibchatConversation *c = &convos.ptr[i];
        int with_alice = c->id.len == bob_convo_len && memcmp(c->id.ptr, bob_convo, bob_convo_len) == 0;
        CHECK(c->has_peer_key && memcmp(c->peer_key, with_alice ? alice_key : carol_key, 32) == 0);
    }
    libchat_conversations_free(&convos);
    CHECK_STATUS(libchat_conversations(carol, &convos), LIBCHAT_OK);
    CHECK(convos.len == 1 && convos.ptr[0].has_peer_key && memcmp(convos.ptr[0].peer_key, bob_key, 32) == 0);
    libchat_conversations_free(&convos);

    LibchatHistory history;
    memset(&history, 0xAB, sizeof history);
    CHECK_STATUS(libchat_history(alice, (const uint8_t *)sent.conversation_id.ptr, sent.conversation_id.len, 10, &history),
                 LIBCHAT_OK);
    CHECK(history.len == 3);
    if (history.len == 3) {
        CHECK(history.ptr[0].direction == LIBCHAT_DIRECTION_SENT && bytes_eq(&history.ptr[0].content, "hi bob"));
        CHECK(history.ptr[1].direction == LIBCHAT_DIRECTION_RECEIVED && bytes_eq(&history.ptr[1].content, "hello alice"));
        CHECK(history.ptr[2].direction == LIBCHAT_DIRECTION_SENT && bytes_eq(&history.ptr[2].content, "third"));
        CHECK(history.ptr[0].id < history.ptr[1].id && history.ptr[0].timestamp_ms > 0);
    }
    libchat_history_free(&history);
    CHECK(is_zero(&history, sizeof history));
    libchat_history_free(&history);
    libchat_history_free(NULL);
    CHECK_STATUS(libchat_history(alice, (const uint8_t *)sent.conversation_id.ptr, sent.conversation_id.len, 1, &history),
                 LIBCHAT_OK);
    CHECK(history.len == 1 && bytes_eq(&history.ptr[0].content, "third")); /* the newest */
    libchat_history_free(&history);
    CHECK_STATUS(libchat_history(alice, LIT("no-such-conversation"), 10, &history), LIBCHAT_OK);
    CHECK(history.len == 0);

    /* ---- error paths of every persistent function ---- */
    LibchatString s;
    CHECK_STATUS(libchat_intro_bundle(NULL, &s), LIBCHAT_ERR_NULL_POINTER);
    CHECK(s.ptr == NULL);
    CHECK_STATUS(libchat_intro_bundle(alice, NULL), LIBCHAT_ERR_NULL_POINTER);

    LibchatSent bad;
    CHECK_STATUS(libchat_start_conversation(NULL, LIT("x"), LIT("x"), &bad), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_start_conversation(alice, LIT("logos_chatintro_1_garbage"), LIT("x"), &bad), LIBCHAT_ERR_BAD_BUNDLE);
    CHECK(is_zero(&bad, sizeof bad));
    CHECK_STATUS(libchat_start_conversation(alice, LIT("not a bundle"), LIT("x"), &bad), LIBCHAT_ERR_BAD_BUNDLE);
    CHECK_STATUS(libchat_start_conversation(alice, BAD_UTF8, sizeof BAD_UTF8, LIT("x"), &bad), LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_start_conversation(alice, NULL, 9, LIT("x"), &bad), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_intro_bundle(bob, &s), LIBCHAT_OK);
    CHECK_STATUS(libchat_start_conversation(alice, (const uint8_t *)s.ptr, s.len, NULL, 2, &bad), LIBCHAT_ERR_NULL_POINTER);
    uint8_t *big = calloc(1, LIBCHAT_MAX_ENVELOPE_LEN + 1);
    CHECK_STATUS(libchat_start_conversation(alice, (const uint8_t *)s.ptr, s.len, big, LIBCHAT_MAX_CONTENT_LEN + 1, &bad),
                 LIBCHAT_ERR_TOO_LARGE);
    CHECK_STATUS(libchat_start_conversation(alice, (const uint8_t *)s.ptr, s.len, LIT("x"), NULL), LIBCHAT_ERR_NULL_POINTER);
    libchat_string_free(&s);
    /* A length above PTRDIFF_MAX is refused before anything reads the pointer. */
    CHECK_STATUS(libchat_receive(bob, big, (size_t)-1, &rcv), LIBCHAT_ERR_TOO_LARGE);

    CHECK_STATUS(libchat_send(NULL, LIT("x"), LIT("x"), &bad), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_send(alice, LIT("no-such-conversation"), LIT("x"), &bad), LIBCHAT_ERR_UNKNOWN_CONVERSATION);
    CHECK_STATUS(libchat_send(alice, BAD_UTF8, sizeof BAD_UTF8, LIT("x"), &bad), LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_send(alice, NULL, 4, LIT("x"), &bad), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_send(alice, (const uint8_t *)sent.conversation_id.ptr, sent.conversation_id.len, NULL, 1, &bad),
                 LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_send(alice, (const uint8_t *)sent.conversation_id.ptr, sent.conversation_id.len, big,
                              LIBCHAT_MAX_CONTENT_LEN + 1, &bad),
                 LIBCHAT_ERR_TOO_LARGE);
    CHECK_STATUS(libchat_send(alice, (const uint8_t *)sent.conversation_id.ptr, sent.conversation_id.len, LIT("x"), NULL),
                 LIBCHAT_ERR_NULL_POINTER);
    libchat_sent_free(&bad);
    libchat_sent_free(&bad);
    libchat_sent_free(NULL);

    CHECK_STATUS(libchat_receive(NULL, LIT("x"), &rcv), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_receive(bob, NULL, 7, &rcv), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_receive(bob, big, LIBCHAT_MAX_ENVELOPE_LEN + 1, &rcv), LIBCHAT_ERR_TOO_LARGE);
    CHECK_STATUS(libchat_receive(bob, LIT("\x0a\x03\x66\x6f\x6fgarbage"), &rcv), LIBCHAT_ERR_DECODE);
    CHECK_STATUS(libchat_receive(bob, LIT("x"), NULL), LIBCHAT_ERR_NULL_POINTER);
    free(big);

    CHECK_STATUS(libchat_outbox_pending(NULL, 10, &outbox), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_outbox_pending(alice, 10, NULL), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_inbox_pending(NULL, 10, &inbox), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_inbox_pending(alice, 10, NULL), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_mark_delivered(NULL, 1, &was_pending), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_mark_delivered(alice, 1, NULL), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_mark_delivered(alice, -5, &was_pending), LIBCHAT_OK);
    CHECK(!was_pending);
    CHECK_STATUS(libchat_acknowledge(NULL, 1, &was_pending), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_acknowledge(alice, 1, NULL), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_conversations(NULL, &convos), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_conversations(alice, NULL), LIBCHAT_ERR_NULL_POINTER);
    uint8_t no_key[32];
    memset(no_key, 0xAB, sizeof no_key);
    CHECK_STATUS(libchat_public_key(NULL, &no_key), LIBCHAT_ERR_NULL_POINTER);
    CHECK(is_zero(no_key, sizeof no_key));
    CHECK_STATUS(libchat_public_key(alice, NULL), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_history(NULL, LIT("x"), 10, &history), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_history(alice, NULL, 3, 10, &history), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_history(alice, BAD_UTF8, sizeof BAD_UTF8, 10, &history), LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_history(alice, LIT("x"), 10, NULL), LIBCHAT_ERR_NULL_POINTER);

    /* Restart: close and reopen from the file; the conversation goes on. */
    libchat_close(&alice);
    CHECK(alice == NULL);
    alice = open_file(alice_path, KEY_A, 32, LIBCHAT_KEY_RAW, "ignored on reopen");
    CHECK(alice != NULL);
    LibchatString name = installation_name(alice);
    CHECK(str_eq(&name, "alice"));
    destroy_string(name);
    LibchatSent after;
    CHECK_STATUS(libchat_send(alice, (const uint8_t *)sent.conversation_id.ptr, sent.conversation_id.len, LIT("after restart"), &after),
                 LIBCHAT_OK);
    CHECK_STATUS(libchat_receive(bob, after.envelope.ptr, after.envelope.len, &rcv), LIBCHAT_OK);
    CHECK(rcv.kind == LIBCHAT_RECEIVED_CONTENT && bytes_eq(&rcv.content, "after restart"));
    libchat_received_free(&rcv);
    libchat_sent_free(&after);

    libchat_sent_free(&reply);
    libchat_sent_free(&sent);
    CHECK(is_zero(&sent, sizeof sent));
    libchat_sent_free(&sent);
    libchat_string_free(&bundle);
    libchat_close(&alice);
    libchat_close(&bob);
    destroy_context(carol);
}

/* The batch functions: receive (per-envelope outcomes, a handshake after its messages, errors
 * that fail one envelope only), send, mark delivered and acknowledge; their error paths. */
static void test_batches(void) {
    ContextHandle *alice = open_file(tmp_path(0, "batch-alice.db"), NULL, 0, LIBCHAT_KEY_NONE, "alice");
    ContextHandle *bob = open_file(tmp_path(1, "batch-bob.db"), KEY_B, 32, LIBCHAT_KEY_RAW, "bob");
    CHECK(alice && bob);
    LibchatString bundle;
    CHECK_STATUS(libchat_intro_bundle(bob, &bundle), LIBCHAT_OK);
    LibchatSent hello;
    CHECK_STATUS(libchat_start_conversation(alice, (const uint8_t *)bundle.ptr, bundle.len, LIT("hello"), &hello),
                 LIBCHAT_OK);
    libchat_string_free(&bundle);

    /* Three messages in one transaction. */
    LibchatSlice contents[3] = {SLICE("m0", 2), SLICE("m1", 2), SLICE("m2", 2)};
    LibchatSentList sent;
    memset(&sent, 0xAB, sizeof sent);
    CHECK_STATUS(libchat_send_batch(alice, (const uint8_t *)hello.conversation_id.ptr, hello.conversation_id.len,
                                    contents, 3, &sent),
                 LIBCHAT_OK);
    CHECK(sent.len == 3 && sent.ptr[0].outbox_id < sent.ptr[1].outbox_id &&
          sent.ptr[2].envelope.len > 0 && str_eq(&sent.ptr[1].delivery_address, "delivery_address") &&
          sent.ptr[0].conversation_id.len == hello.conversation_id.len);
    LibchatOutbox outbox;
    CHECK_STATUS(libchat_outbox_pending(alice, 10, &outbox), LIBCHAT_OK);
    CHECK(outbox.len == 4);
    libchat_outbox_free(&outbox);

    /* Bob's backlog: m2 before the handshake, garbage, a duplicate, an empty envelope. */
    LibchatSlice backlog[7] = {
        SLICE(sent.ptr[2].envelope.ptr, sent.ptr[2].envelope.len),
        SLICE("garbage!", 8),
        SLICE(hello.envelope.ptr, hello.envelope.len),
        SLICE(sent.ptr[0].envelope.ptr, sent.ptr[0].envelope.len),
        SLICE(sent.ptr[1].envelope.ptr, sent.ptr[1].envelope.len),
        SLICE(sent.ptr[0].envelope.ptr, sent.ptr[0].envelope.len),
        SLICE(NULL, 0),
    };
    LibchatReceiveOutcomes got;
    memset(&got, 0xAB, sizeof got);
    CHECK_STATUS(libchat_receive_batch(bob, backlog, 7, &got), LIBCHAT_OK);
    CHECK(got.len == 7);
    if (got.len == 7) {
        CHECK(got.ptr[0].status == LIBCHAT_OK && got.ptr[0].received.kind == LIBCHAT_RECEIVED_CONTENT &&
              bytes_eq(&got.ptr[0].received.content, "m2") && got.ptr[0].error.ptr == NULL);
        CHECK(got.ptr[1].status == LIBCHAT_ERR_DECODE && got.ptr[1].error.len > 0 &&
              got.ptr[1].error.ptr[got.ptr[1].error.len] == '\0' && got.ptr[1].received.kind == 0 &&
              got.ptr[1].received.content.ptr == NULL);
        CHECK(got.ptr[2].status == LIBCHAT_OK && got.ptr[2].received.kind == LIBCHAT_RECEIVED_CONTENT &&
              got.ptr[2].received.is_new_conversation && bytes_eq(&got.ptr[2].received.content, "hello"));
        CHECK(got.ptr[3].status == LIBCHAT_OK && bytes_eq(&got.ptr[3].received.content, "m0"));
        CHECK(got.ptr[4].status == LIBCHAT_OK && bytes_eq(&got.ptr[4].received.content, "m1"));
        CHECK(got.ptr[5].status == LIBCHAT_OK && got.ptr[5].received.kind == LIBCHAT_RECEIVED_DUPLICATE);
        CHECK(got.ptr[6].status == LIBCHAT_OK && got.ptr[6].received.kind == LIBCHAT_RECEIVED_EMPTY);
    }
    int64_t inbox_ids[5] = {0, 0, 0, 0, 999999};
    if (got.len == 7) {
        inbox_ids[0] = got.ptr[0].received.inbox_id;
        inbox_ids[1] = got.ptr[2].received.inbox_id;
        inbox_ids[2] = got.ptr[0].received.inbox_id; /* twice: not pending the second time */
        inbox_ids[3] = got.ptr[3].received.inbox_id;
    }
    libchat_receive_outcomes_free(&got);
    CHECK(is_zero(&got, sizeof got));
    libchat_receive_outcomes_free(&got);
    libchat_receive_outcomes_free(NULL);
    CHECK_STATUS(libchat_receive_batch(bob, NULL, 0, &got), LIBCHAT_OK); /* an empty batch */
    CHECK(got.len == 0 && got.ptr == NULL);

    /* Acknowledge and mark delivered in batches; the flags are written without being read. */
    bool flags[5];
    memset(flags, 0xAB, sizeof flags);
    CHECK_STATUS(libchat_acknowledge_batch(bob, inbox_ids, 5, flags), LIBCHAT_OK);
    const unsigned char *raw = (const unsigned char *)flags;
    CHECK(raw[0] == 1 && raw[1] == 1 && raw[2] == 0 && raw[3] == 1 && raw[4] == 0);
    LibchatInbox inbox;
    CHECK_STATUS(libchat_inbox_pending(bob, 10, &inbox), LIBCHAT_OK);
    CHECK(inbox.len == 1 && bytes_eq(&inbox.ptr[0].content, "m1"));
    libchat_inbox_free(&inbox);
    int64_t outbox_ids[4] = {hello.outbox_id, sent.ptr[0].outbox_id, sent.ptr[1].outbox_id, sent.ptr[2].outbox_id};
    memset(flags, 0xAB, sizeof flags);
    CHECK_STATUS(libchat_mark_delivered_batch(alice, outbox_ids, 4, flags), LIBCHAT_OK);
    CHECK(raw[0] == 1 && raw[1] == 1 && raw[2] == 1 && raw[3] == 1);
    CHECK_STATUS(libchat_mark_delivered_batch(alice, outbox_ids, 4, flags), LIBCHAT_OK);
    CHECK(raw[0] == 0 && raw[1] == 0 && raw[2] == 0 && raw[3] == 0);
    CHECK_STATUS(libchat_mark_delivered_batch(alice, NULL, 0, NULL), LIBCHAT_OK);
    CHECK_STATUS(libchat_acknowledge_batch(bob, NULL, 0, NULL), LIBCHAT_OK);

    /* ---- error paths ---- */
    CHECK_STATUS(libchat_receive_batch(NULL, backlog, 7, &got), LIBCHAT_ERR_NULL_POINTER);
    CHECK(is_zero(&got, sizeof got));
    CHECK_STATUS(libchat_receive_batch(bob, NULL, 2, &got), LIBCHAT_ERR_NULL_POINTER);
    LibchatSlice bad_slices[2] = {SLICE("x", 1), SLICE(NULL, 5)};
    CHECK_STATUS(libchat_receive_batch(bob, bad_slices, 2, &got), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_receive_batch(bob, backlog, 7, NULL), LIBCHAT_ERR_NULL_POINTER);
    uint8_t *big = calloc(1, LIBCHAT_MAX_ENVELOPE_LEN + 1);
    LibchatSlice too_big[1] = {SLICE(big, LIBCHAT_MAX_ENVELOPE_LEN + 1)};
    CHECK_STATUS(libchat_receive_batch(bob, too_big, 1, &got), LIBCHAT_OK); /* fails alone */
    CHECK(got.len == 1 && got.ptr[0].status == LIBCHAT_ERR_TOO_LARGE);
    libchat_receive_outcomes_free(&got);

    LibchatSentList bad_sent;
    const uint8_t *convo = (const uint8_t *)hello.conversation_id.ptr;
    size_t convo_len = hello.conversation_id.len;
    CHECK_STATUS(libchat_send_batch(NULL, convo, convo_len, contents, 3, &bad_sent), LIBCHAT_ERR_NULL_POINTER);
    CHECK(is_zero(&bad_sent, sizeof bad_sent));
    CHECK_STATUS(libchat_send_batch(alice, LIT("no-such-conversation"), contents, 3, &bad_sent),
                 LIBCHAT_ERR_UNKNOWN_CONVERSATION);
    CHECK_STATUS(libchat_send_batch(alice, BAD_UTF8, sizeof BAD_UTF8, contents, 3, &bad_sent), LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_send_batch(alice, convo, convo_len, NULL, 3, &bad_sent), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_send_batch(alice, convo, convo_len, bad_slices, 2, &bad_sent), LIBCHAT_ERR_NULL_POINTER);
    LibchatSlice with_big[2] = {SLICE("fine", 4), SLICE(big, LIBCHAT_MAX_CONTENT_LEN + 1)};
    CHECK_STATUS(libchat_send_batch(alice, convo, convo_len, with_big, 2, &bad_sent), LIBCHAT_ERR_TOO_LARGE);
    CHECK_STATUS(libchat_send_batch(alice, convo, convo_len, contents, 3, NULL), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_outbox_pending(alice, 10, &outbox), LIBCHAT_OK);
    CHECK(outbox.len == 0); /* nothing of the failed calls was sent */
    libchat_outbox_free(&outbox);
    CHECK_STATUS(libchat_send_batch(alice, convo, convo_len, NULL, 0, &bad_sent), LIBCHAT_OK);
    CHECK(bad_sent.len == 0 && bad_sent.ptr == NULL);
    free(big);

    memset(flags, 0xAB, sizeof flags);
    CHECK_STATUS(libchat_mark_delivered_batch(NULL, outbox_ids, 4, flags), LIBCHAT_ERR_NULL_POINTER);
    CHECK(raw[0] == 0 && raw[1] == 0 && raw[2] == 0 && raw[3] == 0); /* all false on failure */
    CHECK_STATUS(libchat_mark_delivered_batch(alice, NULL, 4, flags), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_mark_delivered_batch(alice, outbox_ids, 4, NULL), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_acknowledge_batch(NULL, inbox_ids, 5, flags), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_acknowledge_batch(bob, NULL, 5, flags), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_acknowledge_batch(bob, inbox_ids, 5, NULL), LIBCHAT_ERR_NULL_POINTER);

    libchat_sent_list_free(&sent);
    CHECK(is_zero(&sent, sizeof sent));
    libchat_sent_list_free(&sent);
    libchat_sent_list_free(NULL);
    libchat_sent_free(&hello);
    libchat_close(&alice);
    libchat_close(&bob);
}

static int progress_calls = 0;
static int progress_max_phase = 0;
static void on_progress(void *user_data, int32_t phase, uint64_t done, uint64_t total) {
    CHECK(user_data == (void *)&progress_calls);
    CHECK(phase >= LIBCHAT_IMPORT_PHASE_READING && phase <= LIBCHAT_IMPORT_PHASE_FINISHING);
    CHECK(total == 0 || done <= total);
    if (phase > progress_max_phase) progress_max_phase = phase;
    progress_calls++;
}

static void test_import(const char *legacy_source) {
    /* A copy: the vectors are never opened for writing, even by a buggy build running as root. */
    size_t legacy_len = 0;
    unsigned char *legacy_bytes = read_file(legacy_source, &legacy_len);
    CHECK(legacy_bytes != NULL);
    const char *legacy_plain = tmp_path(3, "raya_plain.db");
    FILE *copy = fopen(legacy_plain, "wb");
    CHECK(copy != NULL && fwrite(legacy_bytes, 1, legacy_len, copy) == legacy_len);
    fclose(copy);

    /* Opened directly, a reference database is refused, untouched: it must be imported. */
    ContextHandle *out = (ContextHandle *)0x1;
    CHECK_STATUS(libchat_open((const uint8_t *)legacy_plain, strlen(legacy_plain), NULL, 0, LIBCHAT_KEY_NONE,
                              LIBCHAT_DURABILITY_FULL, NULL, 0, &out),
                 LIBCHAT_ERR_LEGACY_DATABASE);
    CHECK(out == NULL);
    CHECK(file_unchanged(legacy_plain, legacy_bytes, legacy_len));
    free(legacy_bytes);

    const char *to = tmp_path(0, "imported.db");
    LibchatImportReport report;
    memset(&report, 0xAB, sizeof report);
    CHECK_STATUS(libchat_import_legacy((const uint8_t *)legacy_plain, strlen(legacy_plain), NULL, 0, LIBCHAT_KEY_NONE,
                                       (const uint8_t *)to, strlen(to), KEY_A, 32, LIBCHAT_KEY_RAW,
                                       LIBCHAT_DURABILITY_NORMAL, on_progress, &progress_calls, &report),
                 LIBCHAT_OK);
    CHECK(report.outcome == LIBCHAT_IMPORT_IMPORTED && report.identity_name.len > 0 &&
          report.identity_public_key_hex.len == 64 && report.conversations >= 1 &&
          report.ratchet_states == report.conversations && report.intro_keys >= 1);
    CHECK(progress_calls > 0 && progress_max_phase == LIBCHAT_IMPORT_PHASE_FINISHING);
    libchat_import_report_free(&report);
    CHECK(is_zero(&report, sizeof report));
    libchat_import_report_free(&report);
    libchat_import_report_free(NULL);

    /* Again, without a callback: already imported. */
    CHECK_STATUS(libchat_import_legacy((const uint8_t *)legacy_plain, strlen(legacy_plain), NULL, 0, LIBCHAT_KEY_NONE,
                                       (const uint8_t *)to, strlen(to), KEY_A, 32, LIBCHAT_KEY_RAW,
                                       LIBCHAT_DURABILITY_NORMAL, NULL, NULL, &report),
                 LIBCHAT_OK);
    CHECK(report.outcome == LIBCHAT_IMPORT_ALREADY_IMPORTED);
    libchat_import_report_free(&report);

    /* The imported installation opens with the target key. */
    ContextHandle *h = open_file(to, KEY_A, 32, LIBCHAT_KEY_RAW, NULL);
    CHECK(h != NULL);
    LibchatConversations convos;
    CHECK_STATUS(libchat_conversations(h, &convos), LIBCHAT_OK);
    CHECK(convos.len >= 1);
    /* The reference never stored the peer's key: unknown, and zero. */
    for (size_t i = 0; i < convos.len; i++)
        CHECK(!convos.ptr[i].has_peer_key && is_zero(convos.ptr[i].peer_key, 32));
    libchat_conversations_free(&convos);
    libchat_close(&h);

    /* Errors. */
    const char *missing = tmp_path(1, "missing-legacy.db");
    const char *to2 = tmp_path(2, "imported2.db");
    CHECK_STATUS(libchat_import_legacy((const uint8_t *)missing, strlen(missing), NULL, 0, LIBCHAT_KEY_NONE,
                                       (const uint8_t *)to2, strlen(to2), NULL, 0, LIBCHAT_KEY_NONE,
                                       LIBCHAT_DURABILITY_NORMAL, NULL, NULL, &report),
                 LIBCHAT_ERR_IMPORT_SOURCE_UNREADABLE);
    CHECK_STATUS(libchat_import_legacy((const uint8_t *)legacy_plain, strlen(legacy_plain), KEY_A, 32, LIBCHAT_KEY_RAW,
                                       (const uint8_t *)to2, strlen(to2), NULL, 0, LIBCHAT_KEY_NONE,
                                       LIBCHAT_DURABILITY_NORMAL, NULL, NULL, &report),
                 LIBCHAT_ERR_IMPORT_SOURCE_KEY);
    /* A libchat database is not a reference database. */
    const char *ours = tmp_path(1, "alice.db");
    CHECK_STATUS(libchat_import_legacy((const uint8_t *)ours, strlen(ours), KEY_A, 32, LIBCHAT_KEY_RAW,
                                       (const uint8_t *)to2, strlen(to2), NULL, 0, LIBCHAT_KEY_NONE,
                                       LIBCHAT_DURABILITY_NORMAL, NULL, NULL, &report),
                 LIBCHAT_ERR_IMPORT_NOT_LEGACY);
    /* The target exists with other data. */
    const char *other = tmp_path(1, "bob.db");
    CHECK_STATUS(libchat_import_legacy((const uint8_t *)legacy_plain, strlen(legacy_plain), NULL, 0, LIBCHAT_KEY_NONE,
                                       (const uint8_t *)other, strlen(other), NULL, 0, LIBCHAT_KEY_NONE,
                                       LIBCHAT_DURABILITY_NORMAL, NULL, NULL, &report),
                 LIBCHAT_ERR_IMPORT_TARGET_EXISTS);
    CHECK(report.outcome == 0);
    CHECK_STATUS(libchat_import_legacy(NULL, 3, NULL, 0, LIBCHAT_KEY_NONE, (const uint8_t *)to2, strlen(to2), NULL, 0,
                                       LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_NORMAL, NULL, NULL, &report),
                 LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_import_legacy(BAD_UTF8, sizeof BAD_UTF8, NULL, 0, LIBCHAT_KEY_NONE, (const uint8_t *)to2,
                                       strlen(to2), NULL, 0, LIBCHAT_KEY_NONE, LIBCHAT_DURABILITY_NORMAL, NULL, NULL,
                                       &report),
                 LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_import_legacy((const uint8_t *)legacy_plain, strlen(legacy_plain), NULL, 0, 9,
                                       (const uint8_t *)to2, strlen(to2), NULL, 0, LIBCHAT_KEY_NONE,
                                       LIBCHAT_DURABILITY_NORMAL, NULL, NULL, &report),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_import_legacy((const uint8_t *)legacy_plain, strlen(legacy_plain), NULL, 0, LIBCHAT_KEY_NONE,
                                       (const uint8_t *)to2, strlen(to2), NULL, 0, LIBCHAT_KEY_NONE, 9, NULL, NULL,
                                       &report),
                 LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_import_legacy((const uint8_t *)legacy_plain, strlen(legacy_plain), NULL, 0, LIBCHAT_KEY_NONE,
                                       (const uint8_t *)to2, strlen(to2), NULL, 0, LIBCHAT_KEY_NONE,
                                       LIBCHAT_DURABILITY_NORMAL, NULL, NULL, NULL),
                 LIBCHAT_ERR_NULL_POINTER);
    CHECK(fopen(to2, "rb") == NULL); /* nothing was written */
}

/* ------------------------------------------------------------------------------------------ */
/* PostgreSQL (a build with the `postgres` feature; `url` is a database of its own, or NULL).  */

static ContextHandle *open_pg(const LibchatPgPool *pool, const uint8_t *key, const char *installation,
                              const char *name) {
    ContextHandle *h = (ContextHandle *)0x1; /* garbage: must be overwritten */
    int32_t status = libchat_open_postgres(pool, key, 32, (const uint8_t *)installation, strlen(installation),
                                           (const uint8_t *)name, strlen(name), &h);
    if (status != LIBCHAT_OK) {
        fprintf(stderr, "libchat_open_postgres(%s) failed with %d\n", installation, status);
        print_last_error();
        CHECK(h == NULL);
        return NULL;
    }
    return h;
}

static void test_postgres(const char *url) {
    /* Argument errors, in any build. */
    LibchatPgPool *pool = (LibchatPgPool *)0x1;
    CHECK_STATUS(libchat_pg_pool_open(NULL, 5, 0, &pool), LIBCHAT_ERR_NULL_POINTER);
    CHECK(pool == NULL);
    CHECK_STATUS(libchat_pg_pool_open(LIT("postgresql://x/y"), 0, NULL), LIBCHAT_ERR_NULL_POINTER);
    CHECK_STATUS(libchat_pg_pool_open(BAD_UTF8, sizeof BAD_UTF8, 0, &pool), LIBCHAT_ERR_INVALID_UTF8);
    ContextHandle *h = (ContextHandle *)0x1;
    CHECK_STATUS(libchat_open_postgres(NULL, KEY_A, 32, LIT("saro"), LIT("saro"), &h), LIBCHAT_ERR_NULL_POINTER);
    CHECK(h == NULL);
    libchat_pg_pool_close(NULL);
    pool = NULL;
    libchat_pg_pool_close(&pool);
    if (url == NULL) return;
    CHECK_STATUS(libchat_pg_pool_open(LIT("  "), 0, &pool), LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_pg_pool_open((const uint8_t *)url, strlen(url), 4, &pool), LIBCHAT_OK);
    if (pool == NULL) return;

    /* Two installations of one database talk through the drop-in surface; a third is the
       stranger whose envelopes the other two ignore. */
    ContextHandle *saro = open_pg(pool, KEY_A, "saro", "Saro");
    ContextHandle *raya = open_pg(pool, KEY_A, "raya", "Raya");
    ContextHandle *ravi = open_pg(pool, KEY_A, "ravi", "Ravi");
    CHECK(saro && raya && ravi);
    if (!saro || !raya || !ravi) {
        libchat_close(&saro);
        libchat_close(&raya);
        libchat_close(&ravi);
        libchat_pg_pool_close(&pool);
        return;
    }
    LibchatString name = installation_name(raya);
    CHECK(str_eq(&name, "Raya"));
    destroy_string(name);
    dropin_conversation(saro, raya, ravi);

    /* The persistent surface: a batch with a duplicate, the inbox, sync. */
    LibchatString bundle;
    CHECK_STATUS(libchat_intro_bundle(ravi, &bundle), LIBCHAT_OK);
    LibchatSent hello;
    CHECK_STATUS(libchat_start_conversation(raya, (const uint8_t *)bundle.ptr, bundle.len, LIT("hello ravi"), &hello),
                 LIBCHAT_OK);
    libchat_string_free(&bundle);
    LibchatSlice contents[2] = {SLICE("one", 3), SLICE("two", 3)};
    LibchatSentList sent;
    CHECK_STATUS(libchat_send_batch(raya, (const uint8_t *)hello.conversation_id.ptr, hello.conversation_id.len,
                                    contents, 2, &sent),
                 LIBCHAT_OK);
    CHECK(sent.len == 2);
    if (sent.len == 2) {
        LibchatSlice backlog[4] = {
            SLICE(sent.ptr[1].envelope.ptr, sent.ptr[1].envelope.len), /* before its handshake */
            SLICE(hello.envelope.ptr, hello.envelope.len),
            SLICE(sent.ptr[0].envelope.ptr, sent.ptr[0].envelope.len),
            SLICE(hello.envelope.ptr, hello.envelope.len), /* a duplicate */
        };
        LibchatReceiveOutcomes got;
        CHECK_STATUS(libchat_receive_batch(ravi, backlog, 4, &got), LIBCHAT_OK);
        CHECK(got.len == 4);
        if (got.len == 4) {
            CHECK(got.ptr[0].status == LIBCHAT_OK && bytes_eq(&got.ptr[0].received.content, "two"));
            CHECK(got.ptr[1].status == LIBCHAT_OK && got.ptr[1].received.is_new_conversation &&
                  bytes_eq(&got.ptr[1].received.content, "hello ravi"));
            CHECK(got.ptr[2].status == LIBCHAT_OK && bytes_eq(&got.ptr[2].received.content, "one"));
            CHECK(got.ptr[3].status == LIBCHAT_OK && got.ptr[3].received.kind == LIBCHAT_RECEIVED_DUPLICATE);
        }
        libchat_receive_outcomes_free(&got);
    }
    libchat_sent_list_free(&sent);
    libchat_sent_free(&hello);
    LibchatInbox inbox;
    CHECK_STATUS(libchat_inbox_pending(ravi, 10, &inbox), LIBCHAT_OK);
    CHECK(inbox.len == 3);
    bool was_pending = false;
    if (inbox.len > 0) CHECK_STATUS(libchat_acknowledge(ravi, inbox.ptr[0].id, &was_pending), LIBCHAT_OK);
    CHECK(was_pending);
    libchat_inbox_free(&inbox);
    CHECK_STATUS(libchat_sync(ravi), LIBCHAT_OK); /* nothing to do: commits are durable */

    /* Closing the pool leaves the installations usable. */
    uint8_t raya_key[32];
    CHECK_STATUS(libchat_public_key(raya, &raya_key), LIBCHAT_OK);
    libchat_pg_pool_close(&pool);
    CHECK(pool == NULL);
    libchat_pg_pool_close(&pool); /* harmless */
    LibchatConversations convos;
    CHECK_STATUS(libchat_conversations(raya, &convos), LIBCHAT_OK);
    CHECK(convos.len == 2);
    libchat_conversations_free(&convos);
    libchat_close(&saro);
    libchat_close(&raya);
    libchat_close(&ravi);

    /* Reopened: the same identity; another key or a bad installation name is refused. */
    CHECK_STATUS(libchat_pg_pool_open((const uint8_t *)url, strlen(url), 0, &pool), LIBCHAT_OK);
    if (pool == NULL) return;
    h = (ContextHandle *)0x1;
    CHECK_STATUS(libchat_open_postgres(pool, KEY_B, 32, LIT("raya"), LIT("Raya"), &h), LIBCHAT_ERR_WRONG_KEY);
    CHECK(h == NULL);
    CHECK_STATUS(libchat_open_postgres(pool, KEY_A, 16, LIT("raya"), LIT("Raya"), &h), LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open_postgres(pool, KEY_A, 32, LIT(""), LIT("x"), &h), LIBCHAT_ERR_INVALID_ARGUMENT);
    CHECK_STATUS(libchat_open_postgres(pool, KEY_A, 32, BAD_UTF8, sizeof BAD_UTF8, LIT("x"), &h),
                 LIBCHAT_ERR_INVALID_UTF8);
    CHECK_STATUS(libchat_open_postgres(pool, KEY_A, 32, LIT("raya"), LIT("Raya"), NULL), LIBCHAT_ERR_NULL_POINTER);
    raya = open_pg(pool, KEY_A, "raya", "ignored");
    CHECK(raya != NULL);
    if (raya) {
        uint8_t again[32];
        CHECK_STATUS(libchat_public_key(raya, &again), LIBCHAT_OK);
        CHECK(memcmp(again, raya_key, 32) == 0);
        libchat_close(&raya);
    }
    libchat_pg_pool_close(&pool);
}

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s TMPDIR LEGACY_PLAIN_DB\n", argv[0]);
        return 2;
    }
    snprintf(tmp, sizeof tmp, "%s", argv[1]);
    test_version_and_errors();
    test_dropin_in_memory();
    test_dropin_on_persistent_handles();
    test_open_errors();
    test_keys_and_foreign_files();
    test_passphrase();
    test_persistent();
    test_batches();
    test_import(argv[2]);
    const char *pg_url = getenv("LIBCHAT_FFI_POSTGRES_URL");
    test_postgres(pg_url && *pg_url ? pg_url : NULL);
    printf("%d passed, %d failed\n", checks - failures, failures);
    return failures == 0 ? 0 : 1;
}
