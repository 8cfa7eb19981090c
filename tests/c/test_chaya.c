/*
 * Tests of the C API (ffi/include/chaya.h) from C.
 *
 * Usage: test_chaya MODEL.safetensors
 * Built and run by tests/c/run.sh, against the shared and the static library.
 * Prints one line per failed check and ends with "N passed, N failed".
 */

#include "chaya.h"

#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int passed = 0;
static int failed = 0;

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (cond) {                                                        \
            passed++;                                                      \
        } else {                                                           \
            failed++;                                                      \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fprintf(stderr, "\n");                                         \
        }                                                                  \
    } while (0)

/* Checks that `call` returns `expected`, printing chaya_last_error otherwise. */
#define CHECK_STATUS(call, expected)                                               \
    do {                                                                           \
        chaya_status status_ = (call);                                             \
        CHECK(status_ == (expected), "%s returned %d, expected %d (last error: %s)", \
              #call, (int)status_, (int)(expected), chaya_last_error());            \
    } while (0)

/* ------------------------------------------------------------------ helpers */

/* Text accumulated by the token callback. */
typedef struct {
    char *data;
    size_t len;
    size_t cap;
    size_t calls;
    /* Stop (return false) once this many calls were made; 0 never. */
    size_t stop_after;
    /* Call chaya_cancel on this session at the first call, when set. */
    const chaya_session *cancel_at_first;
    /* Cancel this token at the third call, when set. */
    const chaya_cancel_token *token_at_third;
    /* Try to free this session at the first call, when set; whether the free
     * was refused as the session being in use. */
    chaya_session *free_at_first;
    bool free_refused;
    /* Try to score on this session at the first call, when set; the status. */
    chaya_session *score_at_first;
    chaya_status score_status;
} buffer;

static void buffer_free(buffer *b) {
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool collect(const char *utf8, size_t len, void *user_data) {
    buffer *b = user_data;
    if (b->len + len + 1 > b->cap) {
        b->cap = (b->len + len + 1) * 2;
        b->data = realloc(b->data, b->cap);
        if (!b->data) abort();
    }
    memcpy(b->data + b->len, utf8, len);
    b->len += len;
    b->data[b->len] = '\0';
    b->calls++;
    if (b->cancel_at_first && b->calls == 1) {
        CHECK_STATUS(chaya_cancel(b->cancel_at_first), CHAYA_OK);
    }
    if (b->token_at_third && b->calls == 3) {
        CHECK_STATUS(chaya_cancel_token_cancel(b->token_at_third), CHAYA_OK);
    }
    if (b->free_at_first && b->calls == 1) {
        chaya_session_free(b->free_at_first);
        b->free_refused = strstr(chaya_last_error(), "in use") != NULL;
    }
    if (b->score_at_first && b->calls == 1) {
        size_t n = 0;
        b->score_status = chaya_score(b->score_at_first, "sea", NULL, NULL, 0, &n);
    }
    return b->stop_after == 0 || b->calls < b->stop_after;
}

/* Strict UTF-8 validation (no overlongs, surrogates or values past U+10FFFF). */
static bool valid_utf8(const char *text, size_t len) {
    const unsigned char *s = (const unsigned char *)text;
    size_t i = 0;
    while (i < len) {
        unsigned char c = s[i];
        size_t n;
        unsigned int cp;
        if (c < 0x80) { i++; continue; }
        else if ((c & 0xE0) == 0xC0) { n = 1; cp = c & 0x1F; }
        else if ((c & 0xF0) == 0xE0) { n = 2; cp = c & 0x0F; }
        else if ((c & 0xF8) == 0xF0) { n = 3; cp = c & 0x07; }
        else return false;
        for (size_t k = 1; k <= n; k++) {
            if (i + k >= len || (s[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (s[i + k] & 0x3F);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += n + 1;
    }
    return true;
}

static unsigned char *read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long size = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *data = malloc(size > 0 ? (size_t)size : 1);
    if (data && fread(data, 1, (size_t)size, f) != (size_t)size) {
        free(data);
        data = NULL;
    }
    fclose(f);
    *len = (size_t)size;
    return data;
}

/* Seeded options giving exactly `max_tokens` tokens. */
static chaya_options seeded(uint32_t max_tokens, uint64_t seed) {
    chaya_options opts = chaya_options_default();
    opts.max_tokens = max_tokens;
    opts.has_seed = true;
    opts.seed = seed;
    opts.stop_at_eos = false;
    return opts;
}

static const char *PROMPT = "Once upon a time";

/* ------------------------------------------------------------------ tests */

static void test_basics(const chaya_model *model, const chaya_model *from_memory) {
    const char *version = chaya_version();
    CHECK(version && strlen(version) > 0, "empty version");
    CHECK(chaya_vocab_size(model) > 0, "vocab size 0");
    CHECK(chaya_vocab_size(model) == chaya_vocab_size(from_memory), "vocab sizes differ");
    CHECK(chaya_context_length(model) > 0, "context length 0");
    CHECK(chaya_context_length(model) == chaya_context_length(from_memory),
          "context lengths differ");

    chaya_load_options lo = chaya_load_options_default();
    CHECK(lo.threads == 0 && lo.context_length == 0 && lo.prefill_chunk == 0,
          "load defaults %u %u %u", lo.threads, lo.context_length, lo.prefill_chunk);
    CHECK(chaya_prefill_chunk(model) == 256, "prefill chunk %zu", chaya_prefill_chunk(model));
    chaya_options d = chaya_options_default();
    CHECK(d.max_tokens == 128 && fabsf(d.temperature - 0.8f) < 1e-6f && d.top_k == 40 &&
              d.stop_at_eos && !d.has_seed && !d.compat && d.n_stop_strings == 0 &&
              d.stop_strings == NULL && d.n_logit_bias == 0 && d.penalty_last_n == 64,
          "unexpected defaults");
    chaya_options compat = chaya_options_compat();
    CHECK(compat.compat && compat.penalty_last_n == 0, "compat options: compat %d, last n %u",
          (int)compat.compat, compat.penalty_last_n);
}

static void test_generate(const chaya_model *model, const chaya_model *from_memory) {
    chaya_session *session = NULL;
    CHECK_STATUS(chaya_session_new(model, &session), CHAYA_OK);
    chaya_options opts = seeded(24, 42);

    buffer first = {0};
    chaya_summary summary;
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, collect, &first, &summary), CHAYA_OK);
    CHECK(strcmp(chaya_last_error(), "") == 0, "last error after success: %s",
          chaya_last_error());
    CHECK(first.len > 0 && first.calls > 0, "no text streamed");
    CHECK(valid_utf8(first.data, first.len), "streamed text is not valid UTF-8");
    CHECK(summary.text != NULL && summary.text_len == first.len &&
              memcmp(summary.text, first.data, first.len) == 0 &&
              summary.text[summary.text_len] == '\0',
          "summary text differs from the streamed text");
    CHECK(summary.generated_tokens == 24, "generated %zu tokens", summary.generated_tokens);
    CHECK(summary.stop_reason == CHAYA_STOP_LENGTH, "stop reason %d", (int)summary.stop_reason);
    CHECK(first.calls <= summary.generated_tokens, "%zu callbacks for %zu tokens", first.calls,
          summary.generated_tokens);
    size_t n_prompt = 0;
    CHECK_STATUS(chaya_tokenize(model, PROMPT, NULL, 0, &n_prompt), CHAYA_ERR_BUFFER_TOO_SMALL);
    CHECK(summary.prompt_tokens == n_prompt && n_prompt > 0, "prompt tokens %zu vs %zu",
          summary.prompt_tokens, n_prompt);
    CHECK(summary.prefill_tokens == n_prompt && summary.reused_tokens == 0,
          "prefill %zu reused %zu", summary.prefill_tokens, summary.reused_tokens);
    CHECK(summary.time_to_first_token_ms > 0 && summary.total_ms >= summary.time_to_first_token_ms &&
              summary.prefill_tokens_per_second > 0 && summary.decode_tokens_per_second > 0,
          "timings ttft %f total %f prefill %f decode %f", summary.time_to_first_token_ms,
          summary.total_ms, summary.prefill_tokens_per_second, summary.decode_tokens_per_second);
    chaya_summary_free(&summary);
    CHECK(summary.text == NULL && summary.text_len == 0, "summary not cleared");
    chaya_summary_free(&summary); /* a freed summary may be freed again */

    /* A second call continues the conversation: the cache is reused. */
    buffer cont = {0};
    CHECK_STATUS(chaya_generate(session, " And then", &opts, collect, &cont, &summary), CHAYA_OK);
    CHECK(summary.reused_tokens > 0, "nothing reused by the continuation");
    chaya_summary_free(&summary);
    buffer_free(&cont);

    /* Same seed after a reset: identical text. */
    CHECK_STATUS(chaya_session_reset(session), CHAYA_OK);
    buffer second = {0};
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, collect, &second, NULL), CHAYA_OK);
    CHECK(second.len == first.len && memcmp(second.data, first.data, first.len) == 0,
          "same seed, different text:\n  %s\n  %s", first.data, second.data);

    /* Same seed on the model loaded from memory: identical text too. */
    chaya_session *other = NULL;
    CHECK_STATUS(chaya_session_new(from_memory, &other), CHAYA_OK);
    buffer third = {0};
    CHECK_STATUS(chaya_generate(other, PROMPT, &opts, collect, &third, NULL), CHAYA_OK);
    CHECK(third.len == first.len && memcmp(third.data, first.data, first.len) == 0,
          "model from memory generates different text");

    /* No callback: the text is only in the summary. */
    CHECK_STATUS(chaya_session_reset(other), CHAYA_OK);
    CHECK_STATUS(chaya_generate(other, PROMPT, &opts, NULL, NULL, &summary), CHAYA_OK);
    CHECK(summary.text_len == first.len && memcmp(summary.text, first.data, first.len) == 0,
          "text without streaming differs");
    chaya_summary_free(&summary);

    /* Stop string: a piece of the known output stops generation before it. */
    size_t cut = first.len / 2;
    while (cut > 0 && ((unsigned char)first.data[cut] & 0xC0) == 0x80) cut--;
    size_t end = cut + 1;
    while (end < first.len && ((unsigned char)first.data[end] & 0xC0) == 0x80) end++;
    if (cut > 0 && end <= first.len) {
        char stop[64] = {0};
        memcpy(stop, first.data + cut, end - cut);
        const char *stops[] = {stop};
        chaya_options with_stop = opts;
        with_stop.stop_strings = stops;
        with_stop.n_stop_strings = 1;
        size_t expected = (size_t)(strstr(first.data, stop) - first.data);
        CHECK_STATUS(chaya_session_reset(other), CHAYA_OK);
        CHECK_STATUS(chaya_generate(other, PROMPT, &with_stop, NULL, NULL, &summary), CHAYA_OK);
        CHECK(summary.stop_reason == CHAYA_STOP_STOP_STRING, "stop reason %d",
              (int)summary.stop_reason);
        CHECK(summary.text_len == expected && memcmp(summary.text, first.data, expected) == 0,
              "text before the stop string: %zu bytes, expected %zu", summary.text_len, expected);
        chaya_summary_free(&summary);
    }

    buffer_free(&first);
    buffer_free(&second);
    buffer_free(&third);
    chaya_session_free(other);
    chaya_session_free(session);
}

/* The id of `text`, which must be a single token. */
static uint32_t single_token(const chaya_model *model, const char *text) {
    uint32_t id = 0;
    size_t n = 0;
    CHECK_STATUS(chaya_tokenize(model, text, &id, 1, &n), CHAYA_OK);
    CHECK(n == 1, "\"%s\" is %zu tokens", text, n);
    return id;
}

/* Greedy text of `max_tokens` tokens after "x" with the given biases. */
static void biased(const chaya_model *model, chaya_options opts, const uint32_t *ids,
                   const float *values, size_t n, buffer *out, chaya_summary *summary) {
    chaya_session *session = NULL;
    CHECK_STATUS(chaya_session_new(model, &session), CHAYA_OK);
    opts.temperature = 0.0f;
    opts.repetition_penalty = 1.0f;
    opts.stop_at_eos = false;
    opts.logit_bias_ids = ids;
    opts.logit_bias_values = values;
    opts.n_logit_bias = n;
    CHECK_STATUS(chaya_generate(session, "x", &opts, collect, out, summary), CHAYA_OK);
    chaya_session_free(session);
}

static void test_penalty_window_and_stop_precedence(const chaya_model *model) {
    /* "a" wins unless penalized; then "b" does: a penalized token comes back
       as soon as it leaves the penalty window. */
    uint32_t ids[] = {single_token(model, "a"), single_token(model, "b")};
    float values[] = {200.0f, 150.0f};
    chaya_options opts = chaya_options_default();
    opts.max_tokens = 6;
    opts.presence_penalty = 100.0f;
    const char *expected[] = {"abaaaa", "ababab"};
    for (uint32_t last_n = 0; last_n < 2; last_n++) {
        opts.penalty_last_n = last_n;
        buffer text = {0};
        chaya_summary summary;
        biased(model, opts, ids, values, 2, &text, &summary);
        CHECK(text.data && strcmp(text.data, expected[last_n]) == 0,
              "penalty_last_n %u: \"%s\", expected \"%s\"", last_n,
              text.data ? text.data : "(none)", expected[last_n]);
        chaya_summary_free(&summary);
        buffer_free(&text);
    }

    /* A stop string completed by the piece the callback refuses is the reason. */
    uint32_t ab = single_token(model, "ab");
    float bias = 100.0f;
    const char *stops[] = {"b"};
    opts = chaya_options_default();
    opts.max_tokens = 5;
    opts.stop_strings = stops;
    opts.n_stop_strings = 1;
    buffer text = {.stop_after = 1};
    chaya_summary summary;
    biased(model, opts, &ab, &bias, 1, &text, &summary);
    CHECK(text.calls == 1 && strcmp(text.data, "a") == 0, "%zu calls, text \"%s\"", text.calls,
          text.data ? text.data : "(none)");
    CHECK(summary.stop_reason == CHAYA_STOP_STOP_STRING, "stop reason %d",
          (int)summary.stop_reason);
    chaya_summary_free(&summary);
    buffer_free(&text);
}

/* --- cancellation from another thread */

typedef struct {
    buffer text;
    pthread_mutex_t lock;
    pthread_cond_t started;
    bool has_started;
    chaya_session *session;
    chaya_status busy_generate;
    chaya_status busy_reset;
    chaya_status cancel;
    char busy_message_copy[256];
} cancel_test;

static bool collect_and_signal(const char *utf8, size_t len, void *user_data) {
    cancel_test *t = user_data;
    collect(utf8, len, &t->text);
    if (t->text.calls == 3) {
        pthread_mutex_lock(&t->lock);
        t->has_started = true;
        pthread_cond_signal(&t->started);
        pthread_mutex_unlock(&t->lock);
    }
    return true;
}

static void *canceller(void *arg) {
    cancel_test *t = arg;
    pthread_mutex_lock(&t->lock);
    while (!t->has_started) pthread_cond_wait(&t->started, &t->lock);
    pthread_mutex_unlock(&t->lock);
    /* The session is generating on the main thread: other calls are refused. */
    chaya_options opts = chaya_options_default();
    t->busy_generate = chaya_generate(t->session, "x", &opts, NULL, NULL, NULL);
    snprintf(t->busy_message_copy, sizeof t->busy_message_copy, "%s", chaya_last_error());
    t->busy_reset = chaya_session_reset(t->session);
    t->cancel = chaya_cancel(t->session);
    return NULL;
}

static void test_cancel_from_thread(const chaya_model *model) {
    cancel_test t;
    memset(&t, 0, sizeof t);
    pthread_mutex_init(&t.lock, NULL);
    pthread_cond_init(&t.started, NULL);
    CHECK_STATUS(chaya_session_new(model, &t.session), CHAYA_OK);

    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, canceller, &t) == 0, "pthread_create");
    chaya_options opts = seeded(100000, 7);
    chaya_summary summary;
    CHECK_STATUS(chaya_generate(t.session, PROMPT, &opts, collect_and_signal, &t, &summary),
                 CHAYA_OK);
    pthread_join(thread, NULL);

    CHECK(summary.stop_reason == CHAYA_STOP_CANCELLED, "stop reason %d",
          (int)summary.stop_reason);
    CHECK(summary.generated_tokens >= 3 && summary.generated_tokens < 100000,
          "generated %zu tokens", summary.generated_tokens);
    CHECK(t.busy_generate == CHAYA_ERR_BUSY, "generate during generate: %d",
          (int)t.busy_generate);
    CHECK(strstr(t.busy_message_copy, "busy") != NULL, "busy message: %s", t.busy_message_copy);
    CHECK(t.busy_reset == CHAYA_ERR_BUSY, "reset during generate: %d", (int)t.busy_reset);
    CHECK(t.cancel == CHAYA_OK, "cancel: %d", (int)t.cancel);
    chaya_summary_free(&summary);

    /* The session is usable after a cancelled generation. */
    chaya_options zeroed;
    memset(&zeroed, 0, sizeof zeroed); /* not valid: top_p is 0 */
    CHECK_STATUS(chaya_generate(t.session, " more", &zeroed, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    chaya_options few = seeded(4, 7);
    CHECK_STATUS(chaya_generate(t.session, " more", &few, NULL, NULL, &summary), CHAYA_OK);
    CHECK(summary.stop_reason == CHAYA_STOP_LENGTH && summary.generated_tokens == 4,
          "after cancel: reason %d, %zu tokens", (int)summary.stop_reason,
          summary.generated_tokens);
    chaya_summary_free(&summary);

    buffer_free(&t.text);
    chaya_session_free(t.session);
    pthread_cond_destroy(&t.started);
    pthread_mutex_destroy(&t.lock);
}

/* --- errors */

/* A token cancelled before its call stops it before any computation; one
 * cancelled during its call stops it at once; neither reaches another call. */
static void test_cancel_token(const chaya_model *model) {
    chaya_session *session = NULL;
    CHECK_STATUS(chaya_session_new(model, &session), CHAYA_OK);
    chaya_cancel_token *early = NULL;
    CHECK_STATUS(chaya_cancel_token_new(&early), CHAYA_OK);
    CHECK_STATUS(chaya_cancel_token_cancel(early), CHAYA_OK);
    chaya_options opts = seeded(8, 3);
    buffer text = {0};
    chaya_summary summary;
    CHECK_STATUS(chaya_generate_with_cancel(session, PROMPT, &opts, collect, &text, early, &summary),
                 CHAYA_OK);
    CHECK(summary.stop_reason == CHAYA_STOP_CANCELLED, "stop reason %d", (int)summary.stop_reason);
    CHECK(summary.generated_tokens == 0 && summary.prefill_tokens == 0 && text.calls == 0,
          "%zu tokens, %zu prefilled, %zu calls", summary.generated_tokens, summary.prefill_tokens,
          text.calls);
    chaya_summary_free(&summary);
    chaya_cancel_token_free(early);

    /* The next call continues as one call with the whole prompt would. */
    CHECK_STATUS(chaya_generate_with_cancel(session, "", &opts, NULL, NULL, NULL, &summary), CHAYA_OK);
    chaya_summary whole;
    chaya_session *fresh = NULL;
    CHECK_STATUS(chaya_session_new(model, &fresh), CHAYA_OK);
    CHECK_STATUS(chaya_generate(fresh, PROMPT, &opts, NULL, NULL, &whole), CHAYA_OK);
    CHECK(summary.stop_reason == CHAYA_STOP_LENGTH && summary.text_len == whole.text_len &&
              memcmp(summary.text, whole.text, whole.text_len) == 0,
          "continuation \"%s\" vs \"%s\"", summary.text, whole.text);
    chaya_summary_free(&summary);
    chaya_summary_free(&whole);

    chaya_cancel_token *during = NULL;
    CHECK_STATUS(chaya_cancel_token_new(&during), CHAYA_OK);
    buffer_free(&text);
    text.token_at_third = during;
    opts = seeded(100000, 3);
    CHECK_STATUS(chaya_generate_with_cancel(fresh, " again", &opts, collect, &text, during, &summary),
                 CHAYA_OK);
    CHECK(summary.stop_reason == CHAYA_STOP_CANCELLED && text.calls == 3,
          "stop reason %d after %zu calls", (int)summary.stop_reason, text.calls);
    chaya_summary_free(&summary);
    buffer_free(&text);

    /* Misuse: typed errors, nothing freed twice. */
    CHECK_STATUS(chaya_cancel_token_new(NULL), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_cancel_token_cancel(NULL), CHAYA_ERR_NULL_POINTER);
    chaya_cancel_token_free(NULL);
    chaya_cancel_token_free(during);
    chaya_cancel_token_free(during);
    CHECK(strstr(chaya_last_error(), "freed twice") != NULL, "double free: %s", chaya_last_error());
    CHECK_STATUS(chaya_cancel_token_cancel(during), CHAYA_ERR_INVALID_HANDLE);
    CHECK_STATUS(chaya_generate_with_cancel(session, "x", &opts, NULL, NULL, during, &summary),
                 CHAYA_ERR_INVALID_HANDLE);
    CHECK(summary.text == NULL && summary.generated_tokens == 0, "summary not zeroed on failure");
    CHECK_STATUS(chaya_cancel_token_cancel((const chaya_cancel_token *)session),
                 CHAYA_ERR_INVALID_HANDLE);
    CHECK_STATUS(chaya_generate_with_cancel(session, "x", &opts, NULL, NULL,
                                            (const chaya_cancel_token *)fresh, &summary),
                 CHAYA_ERR_INVALID_HANDLE);
    chaya_session_free(fresh);
    chaya_session_free(session);
}

static void test_errors(const char *model_path, const chaya_model *model) {
    chaya_model *missing = (chaya_model *)1;
    const char *path = "/nonexistent-dir/missing-model.safetensors";
    CHECK_STATUS(chaya_model_load(path, NULL, &missing), CHAYA_ERR_IO);
    CHECK(strstr(chaya_last_error(), path) != NULL, "IO message without the path: %s",
          chaya_last_error());
    CHECK(missing == NULL, "out not cleared on failure");
    CHECK_STATUS(chaya_model_load(NULL, NULL, &missing), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_model_load(model_path, NULL, NULL), CHAYA_ERR_NULL_POINTER);

    chaya_load_options lo = chaya_load_options_default();
    lo.context_length = 100000;
    CHECK_STATUS(chaya_model_load(model_path, &lo, &missing), CHAYA_ERR_INVALID_OPTION);
    CHECK(strstr(chaya_last_error(), "context_length") != NULL, "message: %s",
          chaya_last_error());
    lo = chaya_load_options_default();
    lo.prefill_chunk = 65537;
    CHECK_STATUS(chaya_model_load(model_path, &lo, &missing), CHAYA_ERR_INVALID_OPTION);
    CHECK(strstr(chaya_last_error(), "prefill_chunk") != NULL, "message: %s",
          chaya_last_error());

    const uint8_t garbage[] = "definitely not a safetensors file";
    CHECK_STATUS(chaya_model_load_from_memory(garbage, sizeof garbage, NULL, &missing),
                 CHAYA_ERR_INVALID_MODEL);
    CHECK_STATUS(chaya_model_load_from_memory(NULL, 10, NULL, &missing), CHAYA_ERR_NULL_POINTER);
    CHECK(missing == NULL, "out not cleared on failure");

    chaya_session *session = NULL;
    CHECK_STATUS(chaya_session_new(NULL, &session), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_session_new(model, NULL), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_session_new(model, &session), CHAYA_OK);

    chaya_options opts = seeded(4, 1);
    chaya_summary summary;
    CHECK_STATUS(chaya_generate(session, NULL, &opts, NULL, NULL, &summary),
                 CHAYA_ERR_NULL_POINTER);
    CHECK(strstr(chaya_last_error(), "prompt") != NULL, "message: %s", chaya_last_error());
    CHECK(summary.text == NULL, "summary not zeroed on failure");
    chaya_summary_free(&summary);
    CHECK_STATUS(chaya_generate(NULL, PROMPT, &opts, NULL, NULL, NULL), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_generate(session, "\xff\xfe", &opts, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_UTF8);

    chaya_options bad = opts;
    bad.temperature = -1.0f;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    CHECK(strstr(chaya_last_error(), "temperature") != NULL, "message: %s", chaya_last_error());

    bad = opts;
    bad.n_stop_strings = 2; /* with stop_strings NULL */
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_NULL_POINTER);
    const char *invalid_stop[] = {"\xc3"};
    bad = opts;
    bad.stop_strings = invalid_stop;
    bad.n_stop_strings = 1;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_UTF8);
    uint32_t bias_ids[] = {(uint32_t)chaya_vocab_size(model)};
    float bias_values[] = {1.0f};
    bad = opts;
    bad.logit_bias_ids = bias_ids;
    bad.logit_bias_values = bias_values;
    bad.n_logit_bias = 1;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    CHECK(strstr(chaya_last_error(), "logit_bias") != NULL, "message: %s", chaya_last_error());
    bias_ids[0] = 0;
    bias_values[0] = -INFINITY;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL), CHAYA_OK);

    /* Tokenize: too small a buffer reports the needed size. */
    const char *text = "Hello world, this is a naïve test — 東京!";
    uint32_t small[1];
    size_t needed = 0;
    CHECK_STATUS(chaya_tokenize(model, text, small, 1, &needed), CHAYA_ERR_BUFFER_TOO_SMALL);
    CHECK(needed > 1, "needed %zu", needed);
    uint32_t *ids = malloc(needed * sizeof *ids);
    size_t n = 0;
    CHECK_STATUS(chaya_tokenize(model, text, ids, needed, &n), CHAYA_OK);
    CHECK(n == needed, "%zu ids, %zu needed", n, needed);
    char *decoded = NULL;
    size_t decoded_len = 0;
    CHECK_STATUS(chaya_detokenize(model, ids, n, &decoded, &decoded_len), CHAYA_OK);
    CHECK(decoded && strcmp(decoded, text) == 0, "round trip: %s", decoded ? decoded : "(null)");
    CHECK(decoded_len == strlen(text), "length %zu", decoded_len);
    chaya_string_free(decoded);
    /* A NUL inside the text: the length covers all of it ("i" NUL "i"). */
    uint32_t with_nul[3] = {72, 188, 72};
    CHECK_STATUS(chaya_detokenize(model, with_nul, 3, &decoded, &decoded_len), CHAYA_OK);
    CHECK(decoded_len == 3 && memcmp(decoded, "i\0i", 4) == 0, "NUL kept: length %zu", decoded_len);
    chaya_string_free(decoded);
    free(ids);
    CHECK_STATUS(chaya_tokenize(model, text, NULL, 0, NULL), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_tokenize(model, "\xff", NULL, 0, &n), CHAYA_ERR_INVALID_UTF8);
    CHECK_STATUS(chaya_tokenize(model, "", NULL, 0, &n), CHAYA_OK);
    CHECK(n == 0, "empty text gives %zu ids", n);

    uint32_t out_of_range = (uint32_t)chaya_vocab_size(model);
    decoded = (char *)1;
    CHECK_STATUS(chaya_detokenize(model, &out_of_range, 1, &decoded, &decoded_len), CHAYA_ERR_INVALID_INPUT);
    CHECK(decoded == NULL, "out not cleared on failure");
    CHECK_STATUS(chaya_detokenize(model, NULL, 0, &decoded, NULL), CHAYA_OK);
    CHECK(decoded && decoded[0] == '\0', "empty detokenize");
    chaya_string_free(decoded);
    CHECK_STATUS(chaya_detokenize(model, NULL, 3, &decoded, NULL), CHAYA_ERR_NULL_POINTER);

    CHECK_STATUS(chaya_session_reset(NULL), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_cancel(NULL), CHAYA_ERR_NULL_POINTER);
    CHECK(chaya_vocab_size(NULL) == 0 && chaya_context_length(NULL) == 0 &&
              chaya_prefill_chunk(NULL) == 0,
          "NULL model getters");
    chaya_session_free(session);
}

/* --- scoring */

/* Scores `text` on `session` into new arrays; returns the token count. */
static size_t score(chaya_session *session, const char *text, uint32_t **tokens,
                    float **logprobs) {
    size_t n = 0;
    CHECK_STATUS(chaya_score(session, text, NULL, NULL, 0, &n), CHAYA_ERR_BUFFER_TOO_SMALL);
    *tokens = malloc(n * sizeof **tokens);
    *logprobs = malloc(n * sizeof **logprobs);
    size_t written = 0;
    CHECK_STATUS(chaya_score(session, text, *tokens, *logprobs, n, &written), CHAYA_OK);
    CHECK(written == n, "%zu scored, %zu counted", written, n);
    return n;
}

static void test_score(const chaya_model *model) {
    chaya_session *session = NULL, *untouched = NULL;
    CHECK_STATUS(chaya_session_new(model, &session), CHAYA_OK);
    CHECK_STATUS(chaya_session_new(model, &untouched), CHAYA_OK);
    chaya_options opts = seeded(8, 7);
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, NULL, NULL, NULL), CHAYA_OK);
    CHECK_STATUS(chaya_generate(untouched, PROMPT, &opts, NULL, NULL, NULL), CHAYA_OK);

    const char *candidate = " and the keeper of the sea";
    uint32_t *tokens = NULL, *again_tokens = NULL;
    float *logprobs = NULL, *again = NULL;
    size_t n = score(session, candidate, &tokens, &logprobs);
    size_t n_ids = 0;
    uint32_t ids[64];
    CHECK_STATUS(chaya_tokenize(model, candidate, ids, 64, &n_ids), CHAYA_OK);
    CHECK(n == n_ids && n > 1 && memcmp(tokens, ids, n * sizeof *ids) == 0,
          "the candidate's own %zu tokens are scored (%zu)", n_ids, n);
    for (size_t i = 0; i < n; i++) {
        CHECK(isfinite(logprobs[i]) && logprobs[i] <= 0.0f, "logprob %zu: %f", i, logprobs[i]);
    }
    /* Scored again (its conversation now cached), the same numbers. */
    CHECK(score(session, candidate, &again_tokens, &again) == n, "count changed");
    for (size_t i = 0; i < n; i++) {
        CHECK(fabsf(again[i] - logprobs[i]) < 1e-4f, "logprob %zu: %f then %f", i,
              logprobs[i], again[i]);
    }
    free(tokens), free(logprobs), free(again_tokens), free(again);

    /* A context read without generating (max_tokens 0) is what a score continues:
     * scoring " sea" after it equals the last token's score of the whole text scored
     * in a fresh session (which reads it after end-of-text, as the context starts). */
    chaya_session *reader = NULL;
    CHECK_STATUS(chaya_session_new(model, &reader), CHAYA_OK);
    chaya_options read_only = seeded(0, 1);
    buffer none = {0};
    chaya_summary read;
    CHECK_STATUS(chaya_generate(reader, "<|endoftext|>The sea and", &read_only, collect, &none, &read), CHAYA_OK);
    CHECK(read.generated_tokens == 0 && read.text_len == 0 && none.calls == 0 &&
              read.stop_reason == CHAYA_STOP_LENGTH &&
              read.prefill_tokens == read.prompt_tokens && read.prompt_tokens == 4,
          "max_tokens 0: %zu tokens, %zu callbacks, prefill %zu", read.generated_tokens,
          none.calls, read.prefill_tokens);
    chaya_summary_free(&read);
    n = score(reader, " sea", &tokens, &logprobs);
    chaya_session *fresh = NULL;
    CHECK_STATUS(chaya_session_new(model, &fresh), CHAYA_OK);
    size_t n_whole = score(fresh, "The sea and sea", &again_tokens, &again);
    CHECK(n == 1 && n_whole > 1 && again_tokens[n_whole - 1] == tokens[0] &&
              fabsf(again[n_whole - 1] - logprobs[0]) < 1e-4f,
          "after the context %f, in the whole text %f", n ? logprobs[0] : 0.0f,
          n_whole ? again[n_whole - 1] : 0.0f);
    free(tokens), free(logprobs), free(again_tokens), free(again);
    chaya_session_free(fresh);
    chaya_session_free(reader);

    /* The conversation goes on as if nothing had been scored. */
    chaya_summary scored, plain;
    CHECK_STATUS(chaya_generate(session, " Then", &opts, NULL, NULL, &scored), CHAYA_OK);
    CHECK_STATUS(chaya_generate(untouched, " Then", &opts, NULL, NULL, &plain), CHAYA_OK);
    CHECK(scored.text_len == plain.text_len && memcmp(scored.text, plain.text, plain.text_len) == 0,
          "after scoring: \"%s\", without: \"%s\"", scored.text, plain.text);
    CHECK(scored.reused_tokens == plain.reused_tokens &&
              scored.prefill_tokens == plain.prefill_tokens &&
              scored.context_shifts == plain.context_shifts,
          "reused %zu/%zu, prefill %zu/%zu, shifts %zu/%zu", scored.reused_tokens,
          plain.reused_tokens, scored.prefill_tokens, plain.prefill_tokens,
          scored.context_shifts, plain.context_shifts);
    chaya_summary_free(&scored);
    chaya_summary_free(&plain);

    /* Busy inside a generation's callback on the same session. */
    buffer inside = {0};
    inside.score_at_first = session;
    CHECK_STATUS(chaya_generate(session, "", &opts, collect, &inside, NULL), CHAYA_OK);
    CHECK(inside.score_status == CHAYA_ERR_BUSY, "score in the callback: %d",
          (int)inside.score_status);
    buffer_free(&inside);

    /* Errors. */
    size_t count = 7;
    CHECK_STATUS(chaya_score(session, "", NULL, NULL, 0, &count), CHAYA_OK);
    CHECK(count == 0, "an empty text has %zu tokens", count);
    CHECK_STATUS(chaya_score(NULL, candidate, NULL, NULL, 0, &count), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_score(session, NULL, NULL, NULL, 0, &count), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_score(session, candidate, NULL, NULL, 0, NULL), CHAYA_ERR_NULL_POINTER);
    CHECK_STATUS(chaya_score(session, "\xc3(", NULL, NULL, 0, &count), CHAYA_ERR_INVALID_UTF8);
    float one[64];
    CHECK_STATUS(chaya_score(session, candidate, NULL, one, 64, &count), CHAYA_ERR_NULL_POINTER);
    CHECK(strstr(chaya_last_error(), "tokens") != NULL, "message: %s", chaya_last_error());
    CHECK_STATUS(chaya_score(session, candidate, ids, NULL, 64, &count), CHAYA_ERR_NULL_POINTER);
    size_t context = chaya_context_length(model);
    char *long_text = malloc(context * 4 + 1);
    for (size_t i = 0; i < context; i++) memcpy(long_text + i * 4, " sea", 4);
    long_text[context * 4] = '\0';
    uint32_t *long_tokens = malloc(context * sizeof *long_tokens);
    float *long_logprobs = malloc(context * sizeof *long_logprobs);
    CHECK_STATUS(chaya_score(session, long_text, long_tokens, long_logprobs, context, &count),
                 CHAYA_ERR_INVALID_INPUT);
    CHECK_STATUS(chaya_score(session, long_text, NULL, NULL, 0, &count), CHAYA_ERR_INVALID_INPUT);
    CHECK(strstr(chaya_last_error(), "context window") != NULL, "message: %s",
          chaya_last_error());
    free(long_text), free(long_tokens), free(long_logprobs);

    chaya_session_free(untouched);
    chaya_session_free(session);
}

/* --- misuse */

static void test_misuse(const char *model_path) {
    /* Free functions accept NULL. */
    chaya_model_free(NULL);
    chaya_session_free(NULL);
    chaya_string_free(NULL);
    chaya_summary_free(NULL);
    chaya_summary zeroed;
    memset(&zeroed, 0, sizeof zeroed);
    chaya_summary_free(&zeroed);

    chaya_model *model = NULL;
    chaya_load_options lo = chaya_load_options_default();
    lo.threads = 1;
    lo.context_length = 64;
    lo.prefill_chunk = 16;
    CHECK_STATUS(chaya_model_load(model_path, &lo, &model), CHAYA_OK);
    CHECK(chaya_context_length(model) == 64, "context length %zu", chaya_context_length(model));
    CHECK(chaya_prefill_chunk(model) == 16, "prefill chunk %zu", chaya_prefill_chunk(model));
    chaya_session *session = NULL;
    CHECK_STATUS(chaya_session_new(model, &session), CHAYA_OK);
    /* The session keeps the model alive. */
    chaya_model_free(model);

    /* A callback that stops at once. */
    buffer once = {0};
    once.stop_after = 1;
    chaya_options opts = seeded(50, 3);
    chaya_summary summary;
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, collect, &once, &summary), CHAYA_OK);
    CHECK(summary.stop_reason == CHAYA_STOP_CALLBACK, "stop reason %d", (int)summary.stop_reason);
    CHECK(once.calls == 1, "%zu calls", once.calls);
    chaya_summary_free(&summary);
    buffer_free(&once);

    /* Cancelling when nothing runs does not cancel the next generation. */
    CHECK_STATUS(chaya_cancel(session), CHAYA_OK);
    opts = seeded(5, 3);
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, NULL, NULL, &summary), CHAYA_OK);
    CHECK(summary.stop_reason == CHAYA_STOP_LENGTH, "stop reason %d", (int)summary.stop_reason);
    chaya_summary_free(&summary);

    /* Huge max_tokens, cancelled at once (from the callback itself); the context
     * of 64 tokens overflows first, which must not matter. */
    buffer cancel_now = {0};
    cancel_now.cancel_at_first = session;
    opts = seeded(1000000, 3);
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, collect, &cancel_now, &summary),
                 CHAYA_OK);
    CHECK(summary.stop_reason == CHAYA_STOP_CANCELLED, "stop reason %d",
          (int)summary.stop_reason);
    CHECK(summary.generated_tokens < 1000, "%zu tokens", summary.generated_tokens);
    chaya_summary_free(&summary);
    buffer_free(&cancel_now);

    /* Freeing the session from its own callback is refused; it goes on. */
    buffer free_now = {0};
    free_now.free_at_first = session;
    opts = seeded(8, 3);
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, collect, &free_now, &summary), CHAYA_OK);
    CHECK(free_now.free_refused, "free from the callback: %s", chaya_last_error());
    CHECK(summary.generated_tokens == 8, "%zu tokens", summary.generated_tokens);
    chaya_summary_free(&summary);
    buffer_free(&free_now);

    /* Long enough to overflow the 64-token context: the window slides. */
    opts = seeded(80, 3);
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, NULL, NULL, &summary), CHAYA_OK);
    CHECK(summary.generated_tokens == 80 && summary.context_shifts > 0,
          "%zu tokens, %zu shifts", summary.generated_tokens, summary.context_shifts);
    chaya_summary_free(&summary);

    /* max_tokens over the limit is an option error, not a hang. */
    opts.max_tokens = 2000000;
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    CHECK(strstr(chaya_last_error(), "max_tokens") != NULL, "message: %s", chaya_last_error());

    chaya_session_free(session);
}

/* --- handle misuse: double free, use after free, wrong handles, racing cancel */

typedef struct {
    const chaya_session *session;
    pthread_mutex_t lock; /* guards the fields below */
    bool stop;
    size_t calls;
    size_t invalid;
} cancel_spinner;

/* Calls chaya_cancel in a loop until told to stop, counting INVALID_HANDLE. */
static void *spin_cancel(void *arg) {
    cancel_spinner *spin = arg;
    for (;;) {
        chaya_status status = chaya_cancel(spin->session);
        pthread_mutex_lock(&spin->lock);
        spin->calls++;
        spin->invalid += status == CHAYA_ERR_INVALID_HANDLE;
        bool stop = spin->stop;
        pthread_mutex_unlock(&spin->lock);
        if (stop) return NULL;
    }
}

/* Waits until the spinner made `calls` calls; returns its count then. */
static size_t spinner_wait(cancel_spinner *spin, size_t calls) {
    for (;;) {
        pthread_mutex_lock(&spin->lock);
        size_t now = spin->calls;
        pthread_mutex_unlock(&spin->lock);
        if (now >= calls) return now;
        sched_yield();
    }
}

static void test_handle_misuse(const char *model_path) {
    chaya_load_options lo = chaya_load_options_default();
    lo.threads = 1;
    chaya_model *model = NULL;
    CHECK_STATUS(chaya_model_load(model_path, &lo, &model), CHAYA_OK);
    chaya_session *session = NULL;
    CHECK_STATUS(chaya_session_new(model, &session), CHAYA_OK);

    /* A handle of the wrong type, or any other pointer, is not a handle. */
    int not_a_handle = 0;
    CHECK_STATUS(chaya_cancel((const chaya_session *)model), CHAYA_ERR_INVALID_HANDLE);
    CHECK_STATUS(chaya_cancel((const chaya_session *)&not_a_handle), CHAYA_ERR_INVALID_HANDLE);
    CHECK_STATUS(chaya_session_new((const chaya_model *)session, NULL), CHAYA_ERR_NULL_POINTER);
    chaya_session *other = NULL;
    CHECK_STATUS(chaya_session_new((const chaya_model *)session, &other), CHAYA_ERR_INVALID_HANDLE);
    CHECK(other == NULL, "out not cleared");
    CHECK(chaya_vocab_size((const chaya_model *)&not_a_handle) == 0, "getter on a non-handle");

    /* Cancel racing with free: before the free it is OK, after it INVALID_HANDLE,
     * never a use of freed memory (valgrind and ASan watch this). */
    cancel_spinner spin = {.session = session};
    pthread_mutex_init(&spin.lock, NULL);
    pthread_t thread;
    CHECK(pthread_create(&thread, NULL, spin_cancel, &spin) == 0, "pthread_create");
    spinner_wait(&spin, 100);
    chaya_session_free(session);
    size_t calls_at_free = spinner_wait(&spin, 0);
    spinner_wait(&spin, calls_at_free + 100);
    pthread_mutex_lock(&spin.lock);
    spin.stop = true;
    pthread_mutex_unlock(&spin.lock);
    pthread_join(thread, NULL);
    pthread_mutex_destroy(&spin.lock);
    CHECK(spin.invalid >= 99, "%zu of %zu cancels after free were rejected", spin.invalid,
          spin.calls);

    /* Use after free and double free of a session. */
    chaya_options opts = seeded(4, 1);
    chaya_summary summary;
    CHECK_STATUS(chaya_generate(session, PROMPT, &opts, NULL, NULL, &summary),
                 CHAYA_ERR_INVALID_HANDLE);
    CHECK(summary.text == NULL, "summary zeroed");
    CHECK_STATUS(chaya_session_reset(session), CHAYA_ERR_INVALID_HANDLE);
    CHECK_STATUS(chaya_cancel(session), CHAYA_ERR_INVALID_HANDLE);
    chaya_session_free(session);
    CHECK(strstr(chaya_last_error(), "freed twice") != NULL, "double free noticed: %s",
          chaya_last_error());

    /* Use after free and double free of a model. */
    chaya_model_free(model);
    CHECK(chaya_vocab_size(model) == 0 && chaya_context_length(model) == 0,
          "getters on a freed model");
    CHECK_STATUS(chaya_session_new(model, &other), CHAYA_ERR_INVALID_HANDLE);
    size_t n = 0;
    CHECK_STATUS(chaya_tokenize(model, "hi", NULL, 0, &n), CHAYA_ERR_INVALID_HANDLE);
    chaya_model_free(model);
    CHECK(strstr(chaya_last_error(), "freed twice") != NULL, "double free noticed: %s",
          chaya_last_error());
}

/* --- hostile inputs: malformed UTF-8, NULL callbacks, huge and odd options */

static void test_hostile_inputs(const chaya_model *model) {
    chaya_session *session = NULL;
    CHECK_STATUS(chaya_session_new(model, &session), CHAYA_OK);
    chaya_options opts = seeded(3, 9);

    /* Malformed UTF-8 in every form: a typed error, never a crash. */
    const char *bad_utf8[] = {
        "\xc3",             /* truncated sequence */
        "ok \xc3\x28",      /* bad continuation byte */
        "\xe0\x80\xaf",     /* overlong encoding */
        "\xed\xa0\x80",     /* UTF-16 surrogate */
        "\xf4\x90\x80\x80", /* beyond U+10FFFF */
        "\x80 lone continuation",
    };
    for (size_t i = 0; i < sizeof bad_utf8 / sizeof *bad_utf8; i++) {
        CHECK_STATUS(chaya_generate(session, bad_utf8[i], &opts, NULL, NULL, NULL),
                     CHAYA_ERR_INVALID_UTF8);
        size_t n = 0;
        CHECK_STATUS(chaya_tokenize(model, bad_utf8[i], NULL, 0, &n), CHAYA_ERR_INVALID_UTF8);
    }

    /* NULL callback, NULL options (the defaults) and NULL summary together. */
    CHECK_STATUS(chaya_generate(session, "", NULL, NULL, NULL, NULL), CHAYA_OK);

    /* A long prompt of special and control characters. */
    size_t len = 16 * 1024;
    char *long_prompt = malloc(len + 1);
    for (size_t i = 0; i < len; i++) long_prompt[i] = "<|endoftext|>\x01\t\n "[i % 17];
    long_prompt[len] = '\0';
    chaya_summary summary;
    CHECK_STATUS(chaya_generate(session, long_prompt, &opts, NULL, NULL, &summary), CHAYA_OK);
    CHECK(summary.prompt_tokens > chaya_context_length(model) &&
              summary.prefill_tokens <= chaya_context_length(model) &&
              summary.generated_tokens == 3,
          "a 16 KB prompt (%zu tokens) is cut to the window: %zu prefilled, %zu generated",
          summary.prompt_tokens, summary.prefill_tokens, summary.generated_tokens);
    chaya_summary_free(&summary);
    free(long_prompt);

    /* Extreme option values are typed errors. */
    chaya_options bad = opts;
    bad.max_tokens = UINT32_MAX;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    bad = opts;
    bad.max_tokens = 1000001;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    bad = opts;
    bad.top_k = UINT32_MAX;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    bad = opts;
    bad.temperature = NAN;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    bad = opts;
    bad.top_p = INFINITY;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    bad = opts;
    bad.repetition_penalty = -INFINITY;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    const char *empty_stop[] = {""};
    bad = opts;
    bad.stop_strings = empty_stop;
    bad.n_stop_strings = 1;
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_INVALID_OPTION);
    bad = opts;
    bad.n_logit_bias = 1; /* with NULL arrays */
    CHECK_STATUS(chaya_generate(session, PROMPT, &bad, NULL, NULL, NULL),
                 CHAYA_ERR_NULL_POINTER);

    /* Hostile model bytes: empty, tiny, a huge header length. */
    chaya_model *m = (chaya_model *)1;
    const uint8_t huge_header[16] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f, '{', '}'};
    CHECK_STATUS(chaya_model_load_from_memory(huge_header, 0, NULL, &m), CHAYA_ERR_INVALID_MODEL);
    CHECK_STATUS(chaya_model_load_from_memory(huge_header, 3, NULL, &m), CHAYA_ERR_INVALID_MODEL);
    CHECK_STATUS(chaya_model_load_from_memory(huge_header, sizeof huge_header, NULL, &m),
                 CHAYA_ERR_INVALID_MODEL);
    CHECK(m == NULL, "out cleared");
    chaya_session_free(session);
}

int main(int argc, char **argv) {
    if (argc != 2) {
        fprintf(stderr, "usage: %s MODEL.safetensors\n", argv[0]);
        return 2;
    }
    const char *path = argv[1];
    printf("chaya %s, model %s\n", chaya_version(), path);

    chaya_model *model = NULL;
    CHECK_STATUS(chaya_model_load(path, NULL, &model), CHAYA_OK);
    size_t len = 0;
    unsigned char *bytes = read_file(path, &len);
    CHECK(bytes != NULL, "cannot read %s", path);
    chaya_model *from_memory = NULL;
    if (bytes) {
        CHECK_STATUS(chaya_model_load_from_memory(bytes, len, NULL, &from_memory), CHAYA_OK);
        free(bytes); /* the model keeps its own copy */
    }
    if (!model || !from_memory) {
        fprintf(stderr, "cannot load the model: %s\n", chaya_last_error());
        return 1;
    }

    test_basics(model, from_memory);
    test_generate(model, from_memory);
    test_penalty_window_and_stop_precedence(model);
    test_cancel_from_thread(model);
    test_cancel_token(model);
    test_errors(path, model);
    test_score(model);
    test_misuse(path);
    test_handle_misuse(path);
    test_hostile_inputs(model);

    chaya_model_free(from_memory);
    chaya_model_free(model);
    printf("%d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
