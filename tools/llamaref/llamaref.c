// llamaref is the llama.cpp reference the engine's tests compare against.
// It links the prebuilt libllama from @node-llama-cpp/linux-x64 and does
// these things, each on one CPU thread unless told otherwise:
//
//   llamaref quantize IN.gguf OUT.gguf FTYPE      llama_model_quantize (FTYPE: q8_0 q4_0 q4_k_m f16)
//   llamaref greedy MODEL.gguf N OUT.bin TOK...   greedy decode N tokens after the prompt TOK...;
//                                                 OUT.bin: int32 n_vocab, then per step the int32
//                                                 chosen token and n_vocab float32 logits
//   llamaref bench MODEL.gguf NPROMPT NGEN THREADS  prints "prefill_tps decode_tps prefill_cpu_tps decode_cpu_tps"
//   llamaref embed MODEL.gguf OUT.bin TOK...      mean-pooled embedding of TOK... (one batch, as llama.cpp's
//                                                 server with --pooling mean); OUT.bin: int32 n_embd, then
//                                                 n_embd float32 from llama_get_embeddings_seq (not normalized)
//   llamaref trace MODEL.gguf TOK...              prints every tensor the graph computes
//   llamaref cpu                                  prints the loaded CPU backend's features
//
// The prebuilt package ships one CPU backend per CPU generation and ggml
// loads the best one the CPU runs. Each sums in its own order, so for the
// engine's bit-identity tests LLAMAREF_CPU=NAME loads libggml-cpu-NAME.so
// from LLAMAREF_LIBDIR instead (e.g. haswell: the AVX2 kernels the engine
// follows); unset or "native" keeps ggml's own choice.
//
// Flash attention is disabled so attention runs as plain mul_mat + softmax
// over an F16 KV cache, the path the engine mirrors.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include "llama.h"
#include "ggml-backend.h"
#include "ggml.h"
#include <stdbool.h>

static void quiet(enum ggml_log_level level, const char *text, void *ud) {
    (void)ud;
    if (level >= GGML_LOG_LEVEL_ERROR) fputs(text, stderr);
}

static double now_s(clockid_t c) {
    struct timespec ts;
    clock_gettime(c, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static struct llama_context *open_ctx(const char *path, int n_ctx, int threads, struct llama_model **out) {
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *m = llama_model_load_from_file(path, mp);
    if (!m) { fprintf(stderr, "llamaref: cannot load %s\n", path); exit(2); }
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = n_ctx;
    cp.n_batch = n_ctx;
    cp.n_ubatch = n_ctx;
    cp.n_threads = threads;
    cp.n_threads_batch = threads;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(m, cp);
    if (!ctx) { fprintf(stderr, "llamaref: cannot create context\n"); exit(2); }
    *out = m;
    return ctx;
}

static int argmax(const float *v, int n) {
    int best = 0;
    for (int i = 1; i < n; i++) if (v[i] > v[best]) best = i;
    return best;
}

static int cmd_quantize(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: llamaref quantize IN OUT FTYPE\n"); return 2; }
    struct llama_model_quantize_params p = llama_model_quantize_default_params();
    p.nthread = 1;
    if (!strcmp(argv[4], "q8_0")) p.ftype = LLAMA_FTYPE_MOSTLY_Q8_0;
    else if (!strcmp(argv[4], "q4_0")) p.ftype = LLAMA_FTYPE_MOSTLY_Q4_0;
    else if (!strcmp(argv[4], "q4_k_m")) p.ftype = LLAMA_FTYPE_MOSTLY_Q4_K_M;
    else if (!strcmp(argv[4], "f16")) p.ftype = LLAMA_FTYPE_MOSTLY_F16;
    else { fprintf(stderr, "llamaref: unknown ftype %s\n", argv[4]); return 2; }
    if (llama_model_quantize(argv[2], argv[3], &p) != 0) { fprintf(stderr, "llamaref: quantize failed\n"); return 1; }
    return 0;
}

static int cmd_greedy(int argc, char **argv) {
    if (argc < 6) { fprintf(stderr, "usage: llamaref greedy MODEL N OUT TOK...\n"); return 2; }
    int n = atoi(argv[3]);
    int np = argc - 5;
    llama_token *toks = calloc(np + n, sizeof(llama_token));
    for (int i = 0; i < np; i++) toks[i] = atoi(argv[5 + i]);
    struct llama_model *m;
    struct llama_context *ctx = open_ctx(argv[2], 512, 1, &m);
    const struct llama_vocab *vocab = llama_model_get_vocab(m);
    int nv = llama_vocab_n_tokens(vocab);
    FILE *f = fopen(argv[4], "wb");
    if (!f) { perror(argv[4]); return 1; }
    fwrite(&nv, 4, 1, f);
    // LLAMAREF_SERIAL=1 feeds the prompt one token at a time (decode kernels only).
    if (getenv("LLAMAREF_SERIAL")) {
        for (int i = 0; i < np - 1; i++)
            if (llama_decode(ctx, llama_batch_get_one(&toks[i], 1)) != 0) return 1;
        toks += np - 1;
        np = 1;
    }
    struct llama_batch b = llama_batch_get_one(toks, np);
    for (int step = 0; step < n; step++) {
        if (llama_decode(ctx, b) != 0) { fprintf(stderr, "llamaref: decode failed\n"); return 1; }
        const float *lg = llama_get_logits_ith(ctx, -1);
        llama_token t = argmax(lg, nv);
        fwrite(&t, 4, 1, f);
        fwrite(lg, 4, nv, f);
        toks[np + step] = t;
        b = llama_batch_get_one(&toks[np + step], 1);
    }
    fclose(f);
    llama_free(ctx);
    llama_model_free(m);
    return 0;
}

// trace prints, for every F32 tensor the graph computes while decoding the
// prompt, its name, shape and the first values of its last row: a debugging
// aid for locating where an implementation departs from llama.cpp.
static bool trace_cb(struct ggml_tensor *t, bool ask, void *ud) {
    (void)ud;
    if (ask) return true;
    if (t->type != GGML_TYPE_F32 || !ggml_is_contiguous(t)) return true;
    int64_t n0 = t->ne[0];
    int64_t nrows = ggml_nrows(t);
    const float *row = (const float *)t->data + (nrows - 1) * n0;
    double sum = 0;
    for (int64_t i = 0; i < n0; i++) sum += row[i];
    const char *tr = getenv("TRACE_ROW");
    const float *first = (const float *)t->data + (tr ? atoll(tr) : 0) * n0;
    printf("%-24s [%lld %lld %lld] sum=%.6f v=%.6f %.6f %.6f %.6f first=%.6f %.6f\n", t->name, (long long)t->ne[0], (long long)t->ne[1],
           (long long)t->ne[2], sum, row[0], n0 > 1 ? row[1] : 0, n0 > 2 ? row[2] : 0, n0 > 3 ? row[3] : 0, first[0], n0 > 1 ? first[1] : 0);
    return true;
}

static int cmd_trace(int argc, char **argv) {
    if (argc < 4) { fprintf(stderr, "usage: llamaref trace MODEL TOK...\n"); return 2; }
    int np = argc - 3;
    llama_token *toks = calloc(np, sizeof(llama_token));
    for (int i = 0; i < np; i++) toks[i] = atoi(argv[3 + i]);
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *m = llama_model_load_from_file(argv[2], mp);
    if (!m) return 2;
    struct llama_context_params cp = llama_context_default_params();
    cp.n_ctx = 512; cp.n_batch = 512; cp.n_ubatch = 512;
    cp.n_threads = 1; cp.n_threads_batch = 1;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.cb_eval = trace_cb;
    struct llama_context *ctx = llama_init_from_model(m, cp);
    if (!ctx) return 2;
    if (llama_decode(ctx, llama_batch_get_one(toks, np)) != 0) return 1;
    llama_free(ctx);
    llama_model_free(m);
    return 0;
}

static int cmd_bench(int argc, char **argv) {
    if (argc != 6) { fprintf(stderr, "usage: llamaref bench MODEL NPROMPT NGEN THREADS\n"); return 2; }
    int np = atoi(argv[3]), ng = atoi(argv[4]), th = atoi(argv[5]);
    struct llama_model *m;
    struct llama_context *ctx = open_ctx(argv[2], np + ng + 8, th, &m);
    int nv = llama_vocab_n_tokens(llama_model_get_vocab(m));
    llama_token *toks = calloc(np + ng, sizeof(llama_token));
    for (int i = 0; i < np; i++) toks[i] = 100 + (i * 7919) % (nv - 200);
    // warm-up pass so page faults of the mmap do not count
    struct llama_batch b = llama_batch_get_one(toks, 8);
    if (llama_decode(ctx, b) != 0) return 1;
    llama_memory_clear(llama_get_memory(ctx), true);

    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    b = llama_batch_get_one(toks, np);
    if (llama_decode(ctx, b) != 0) return 1;
    double w1 = now_s(CLOCK_MONOTONIC), c1 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    llama_token t = argmax(llama_get_logits_ith(ctx, -1), nv);
    for (int i = 0; i < ng; i++) {
        toks[np + i] = t;
        b = llama_batch_get_one(&toks[np + i], 1);
        if (llama_decode(ctx, b) != 0) return 1;
        t = argmax(llama_get_logits_ith(ctx, -1), nv);
    }
    double w2 = now_s(CLOCK_MONOTONIC), c2 = now_s(CLOCK_PROCESS_CPUTIME_ID);
    printf("%.3f %.3f %.3f %.3f\n", np / (w1 - w0), ng / (w2 - w1), np / (c1 - c0), ng / (c2 - c1));
    llama_free(ctx);
    llama_model_free(m);
    return 0;
}

static int cmd_embed(int argc, char **argv) {
    if (argc < 5) { fprintf(stderr, "usage: llamaref embed MODEL OUT TOK...\n"); return 2; }
    int np = argc - 4;
    llama_token *toks = calloc(np, sizeof(llama_token));
    for (int i = 0; i < np; i++) toks[i] = atoi(argv[4 + i]);
    struct llama_model_params mp = llama_model_default_params();
    struct llama_model *m = llama_model_load_from_file(argv[2], mp);
    if (!m) { fprintf(stderr, "llamaref: cannot load %s\n", argv[2]); return 2; }
    struct llama_context_params cp = llama_context_default_params();
    int n_ctx = np < 512 ? 512 : np;
    cp.n_ctx = n_ctx; cp.n_batch = n_ctx; cp.n_ubatch = n_ctx;
    cp.n_threads = 1; cp.n_threads_batch = 1;
    cp.flash_attn_type = LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cp.embeddings = true;
    cp.pooling_type = LLAMA_POOLING_TYPE_MEAN;
    cp.no_perf = true;
    struct llama_context *ctx = llama_init_from_model(m, cp);
    if (!ctx) { fprintf(stderr, "llamaref: cannot create context\n"); return 2; }
    struct llama_batch b = llama_batch_init(np, 0, 1);
    for (int i = 0; i < np; i++) {
        b.token[i] = toks[i];
        b.pos[i] = i;
        b.n_seq_id[i] = 1;
        b.seq_id[i][0] = 0;
        b.logits[i] = 1;
    }
    b.n_tokens = np;
    if (llama_decode(ctx, b) != 0) { fprintf(stderr, "llamaref: decode failed\n"); return 1; }
    const float *e = llama_get_embeddings_seq(ctx, 0);
    if (!e) { fprintf(stderr, "llamaref: no pooled embedding\n"); return 1; }
    int ne = llama_model_n_embd(m);
    FILE *f = fopen(argv[3], "wb");
    if (!f) { perror(argv[3]); return 1; }
    fwrite(&ne, 4, 1, f);
    fwrite(e, 4, ne, f);
    fclose(f);
    llama_batch_free(b);
    llama_free(ctx);
    llama_model_free(m);
    return 0;
}

// cmd_cpu prints the CPU backend's feature list, "NAME=VALUE" comma-joined,
// so a log shows which variant the numbers came from.
static int cmd_cpu(void) {
    for (size_t i = 0; i < ggml_backend_reg_count(); i++) {
        ggml_backend_reg_t reg = ggml_backend_reg_get(i);
        if (strcmp(ggml_backend_reg_name(reg), "CPU")) continue;
        ggml_backend_get_features_t get = (ggml_backend_get_features_t)ggml_backend_reg_get_proc_address(reg, "ggml_backend_get_features");
        if (!get) { fprintf(stderr, "llamaref: CPU backend lists no features\n"); return 1; }
        const char *sep = "";
        for (struct ggml_backend_feature *f = get(reg); f && f->name; f++) {
            printf("%s%s=%s", sep, f->name, f->value);
            sep = ",";
        }
        printf("\n");
        return 0;
    }
    fprintf(stderr, "llamaref: no CPU backend loaded\n");
    return 1;
}

static void load_backends(void) {
    const char *dir = getenv("LLAMAREF_LIBDIR");
    const char *cpu = getenv("LLAMAREF_CPU");
    if (cpu && *cpu && strcmp(cpu, "native")) {
        char path[4096];
        snprintf(path, sizeof path, "%s/libggml-cpu-%s.so", dir ? dir : ".", cpu);
        // ggml_backend_load refuses a variant whose instructions this CPU lacks.
        if (!ggml_backend_load(path)) { fprintf(stderr, "llamaref: cannot load CPU backend %s\n", path); exit(2); }
        return;
    }
    if (dir) ggml_backend_load_all_from_path(dir); else ggml_backend_load_all();
}

int main(int argc, char **argv) {
    if (argc < 2) { fprintf(stderr, "usage: llamaref quantize|greedy|bench|embed|trace|cpu ...\n"); return 2; }
    llama_log_set(quiet, NULL);
    load_backends();
    llama_backend_init();
    if (!strcmp(argv[1], "cpu")) return cmd_cpu();
    if (!strcmp(argv[1], "quantize")) return cmd_quantize(argc, argv);
    if (!strcmp(argv[1], "greedy")) return cmd_greedy(argc, argv);
    if (!strcmp(argv[1], "bench")) return cmd_bench(argc, argv);
    if (!strcmp(argv[1], "trace")) return cmd_trace(argc, argv);
    if (!strcmp(argv[1], "embed")) return cmd_embed(argc, argv);
    fprintf(stderr, "llamaref: unknown command %s\n", argv[1]);
    return 2;
}
