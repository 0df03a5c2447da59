// aigw configuration: one ZPL file (CZMQ zconfig) read by broker, worker and edge.
// Every key is validated; a bad file yields a message naming the key.
#ifndef AIGW_CFG_H
#define AIGW_CFG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CFG_NAME_MAX 128
#define CFG_STR_MAX 512
#define CFG_TARGETS_MAX 16
#define CFG_CERT_NAME_MAX 64            // certificate names (fabric), incl. NUL
#define CFG_FABRIC_WORKERS_MAX 32       // entries in fabric/workers
#define CFG_HOLD_AUTO UINT32_MAX       // broker/start_hold_ms not set
#define CFG_BROKERS_MAX 8               // endpoints in edge/broker, worker/broker

typedef enum {
    CFG_PROVIDER_SIM = 0,
    CFG_PROVIDER_OPENAI,
    CFG_PROVIDER_ANTHROPIC,
    CFG_PROVIDER_OLLAMA,
} cfg_provider_t;

typedef enum { CFG_POLICY_RACE = 0, CFG_POLICY_HEDGE = 1, CFG_POLICY_FALLBACK = 2 } cfg_policy_t;

#define CFG_RETRIES_MAX 5
#define CFG_RETRIES_UNSET (-1)          // retries not given: 0 for a race of several, else 1

//  A target's health at the broker (docs/errors.md "Cooldown", "Hedge budget"): the
//  broker section's values are the defaults, a model may override any of them.
typedef struct {
    uint32_t cooldown_failures;         // failures in a row that trip, default 5 (0 = never)
    double cooldown_error_rate;         // window error rate that trips, default 0.5 (0 = never)
    uint32_t cooldown_min_requests;     // outcomes before the rate counts, default 20
    uint32_t cooldown_window_ms;        // error-rate window, default 10000
    uint32_t cooldown_ms;               // first cooldown, default 5000 (doubles per trip)
    uint32_t cooldown_max_ms;           // longest cooldown, default 60000
    double hedge_budget;                // backups per regular start, default 0.1
    uint32_t set;                       // bit i: the i-th key above was given (models)
} cfg_health_t;

typedef struct {
    char name[CFG_NAME_MAX];
    cfg_provider_t provider;
    //  Network providers
    char base_url[CFG_STR_MAX];         // e.g. https://api.openai.com/v1
    char api_key_env[CFG_NAME_MAX];     // env var holding the key; "" = no key
    char upstream_model[CFG_NAME_MAX];  // model name sent upstream (default: name)
    uint32_t timeout_ms;                // whole upstream call (default 120000)
    uint32_t connect_timeout_ms;        // default 5000
    uint64_t max_response_bytes;        // default 8 MiB
    uint32_t max_tokens;                // anthropic default max_tokens (default 1024)
    //  sim provider
    uint32_t latency_ms;                // median latency (default 40)
    double jitter;                      // lognormal sigma (default 0.0 = fixed)
    double fail_rate;                   // 0..1 (default 0)
    char text[CFG_STR_MAX];             // reply text
    uint64_t seed;                      // PRNG seed (default 1)
    uint32_t tokens_per_s;              // streaming rate (default 0 = all at once)
    //  Prices (USD per million tokens; default 0 = free)
    double input_price;
    double output_price;
    //  Failure handling
    int32_t retries;                    // CFG_RETRIES_UNSET or 0..CFG_RETRIES_MAX
    uint32_t retry_backoff_ms;          // 0 = broker default
    cfg_health_t health;                // overrides of broker/* (health.set)
} cfg_model_t;

typedef struct {
    char name[CFG_NAME_MAX];
    cfg_policy_t policy;
    char targets[CFG_TARGETS_MAX][CFG_NAME_MAX];
    size_t ntargets;
    bool hedge_auto;                    // hedge_delay_ms = auto
    uint32_t hedge_delay_ms;            // 0 = not set
    uint32_t deadline_ms;               // 0 = not set
    uint32_t ttft_timeout_ms;           // 0 = not set
    int32_t retries;                    // CFG_RETRIES_UNSET: 0 for race, else 1
    uint32_t retry_backoff_ms;          // 0 = broker default
} cfg_group_t;

//  fabric/workers: one certificate name and the models it may serve.
typedef struct {
    char name[CFG_CERT_NAME_MAX];       // certificate name
    char models[CFG_STR_MAX];           // comma list of model patterns (`*` = any run)
} cfg_fabric_worker_t;

//  The fabric section: CURVE on the zmq sockets and who may do what (docs/security.md).
typedef struct {
    bool curve;                         // CURVE on every fabric socket (default off)
    char cert_dir[CFG_STR_MAX];         // certificates; made absolute against the config file
    bool insecure;                      // allow non-loopback endpoints with curve off
    char clients[CFG_STR_MAX];          // certificates that may SUBMIT/PING, default "edge, agent"
    cfg_fabric_worker_t workers[CFG_FABRIC_WORKERS_MAX];   // default worker=*, agent=agent/*
    size_t nworkers;
    uint32_t ping_ms;                   // ZMTP ping on every fabric connection, default 250
                                        // (0 = off)
    uint32_t ping_timeout_ms;           // a connection silent this long is dropped and
                                        // its peer's work settled, default 1000
} cfg_fabric_t;

//  limits/on_failure: what the edge does when the shared limits backend fails.
typedef enum {
    CFG_LIMITS_LOCAL = 0,               // the embedded per-edge limiter (default)
    CFG_LIMITS_OPEN,                    // admit without the shared limits
    CFG_LIMITS_CLOSED,                  // refuse: 503 limits_unavailable
} cfg_limits_failure_t;

typedef enum { CFG_LIMITS_MEMORY = 0, CFG_LIMITS_REDIS_TCP, CFG_LIMITS_REDIS_UNIX } cfg_limits_kind_t;

//  The limits section: where per-key rpm/tpm/parallel/budget counters live (docs/limits.md).
typedef struct {
    cfg_limits_kind_t kind;             // from backend: memory (default), redis://, unix:
    char backend[CFG_STR_MAX];          // as written ("memory" by default)
    char host[CFG_STR_MAX];             // redis:// host
    uint16_t port;                      // redis:// port (default 6379)
    char socket[CFG_STR_MAX];           // unix: path; made absolute against the config file
    char redis_password_env[CFG_NAME_MAX];  // env var holding the AUTH password; "" = none
    uint32_t redis_timeout_ms;          // connect and command timeout, default 50
    cfg_limits_failure_t on_failure;    // default local
    char prefix[64];                    // Redis key prefix, default "aigw:"
} cfg_limits_t;

typedef struct {
    cfg_fabric_t fabric;
    cfg_limits_t limits;
    struct {
        char frontend[CFG_STR_MAX];     // default tcp://127.0.0.1:5555
        char backend[CFG_STR_MAX];      // default tcp://127.0.0.1:5556
        char metrics[CFG_STR_MAX];      // default tcp://127.0.0.1:5557
        uint32_t heartbeat_ms;          // default 1000
        uint32_t liveness;              // default 3
        uint32_t start_hold_ms;         // CFG_HOLD_AUTO (heartbeat_ms * liveness); 0 = off
        uint32_t queue_limit;           // per model, default 1024
        uint32_t deadline_ms;           // default job deadline, default 120000
        uint32_t max_deadline_ms;       // default 600000
        uint32_t hedge_default_ms;      // hedge delay when auto has no data yet, default 200
        uint32_t retry_backoff_ms;      // retry backoff base when a job gives none, default 100
        cfg_health_t health;            // every target's cooldown and hedge budget
        int64_t max_frame;              // ZMQ_MAXMSGSIZE, default 8 MiB
        char cert[CFG_CERT_NAME_MAX];   // own certificate (fabric), default "broker"
    } broker;
    struct {
        char listen[CFG_STR_MAX];       // default 127.0.0.1:8080
        char broker[CFG_STR_MAX];       // comma list of broker frontends, default =
                                        // broker.frontend
        uint32_t threads;               // event-loop threads, default 0 = one per core
        uint64_t max_body;              // bytes, default 1 MiB
        char document_root[CFG_STR_MAX];// default "" (no static files)
        uint32_t max_json_depth;        // request body nesting limit, 1..1000, default 64
        uint32_t max_connections;       // open connections, default 16384
        uint32_t max_per_ip;            // open connections per client IP, default 1024
        uint32_t max_jobs;              // chat jobs in flight, default 16384
        uint32_t max_header_bytes;      // request line + headers, default 4096
        uint32_t max_headers;           // header fields, default 64
        uint32_t idle_timeout_ms;       // no byte moved on a connection, default 30000
        uint32_t header_timeout_ms;     // to receive a request's headers, default 10000
        uint32_t stream_buffer;         // bytes queued per SSE client, default 1 MiB
        char cors_origins[CFG_STR_MAX]; // comma list of allowed origins ("*" = any), default ""
        char tls_cert[CFG_STR_MAX];     // PEM certificate chain path; TLS when set
        char tls_key[CFG_STR_MAX];      // PEM private key path
        bool auth;                      // virtual keys required (default off)
        char keys_db[CFG_STR_MAX];      // SQLite key database (needed when auth is on)
        char admin_key_env[CFG_NAME_MAX]; // env var with the admin key, default AIGW_ADMIN_KEY
        bool insecure;                  // allow a non-loopback listen with auth off
        char cert[CFG_CERT_NAME_MAX];   // own certificate (fabric), default "edge"
    } edge;
    struct {
        char broker[CFG_STR_MAX];       // comma list of broker backends, default =
                                        // broker.backend
        uint32_t capacity;              // default 64
        char cert[CFG_CERT_NAME_MAX];   // own certificate (fabric), default "worker"
    } worker;
    cfg_model_t *models;
    size_t nmodels;
    cfg_group_t *groups;
    size_t ngroups;
} cfg_t;

//  Load and validate a config file. Returns NULL on any error and writes a
//  one-line message naming the file and the key into err. Caller owns result.
//  fabric/cert_dir and a limits/backend unix: socket are made absolute against the
//  file's directory.
cfg_t *cfg_load (const char *path, char *err, size_t errlen);

//  Same, from ZPL text in memory (source is used in messages).
cfg_t *cfg_parse (const char *text, const char *source, char *err, size_t errlen);

//  Built-in defaults with no models (used when no file is given to tools).
cfg_t *cfg_defaults (void);

void cfg_destroy (cfg_t **self_p);

//  Lookups; return NULL if absent. Pointers stay valid until cfg_destroy.
const cfg_model_t *cfg_model (const cfg_t *self, const char *name);
const cfg_group_t *cfg_group (const cfg_t *self, const char *name);
//  Health settings of a model: broker/* with the model's overrides (any name works:
//  an unknown one gets the broker's).
void cfg_model_health (const cfg_t *self, const char *model, cfg_health_t *out);

//  Cost in USD of an attempt's usage at the model's prices (0 for an unknown model).
double cfg_cost (const cfg_t *self, const char *model, uint64_t prompt_tokens,
                 uint64_t completion_tokens);

//  Make a relative path absolute against the directory of config_path (the file it
//  came from); absolute and empty paths are left alone. -1 if it does not fit in cap.
int cfg_resolve_path (char *path, size_t cap, const char *config_path);

//  True when a listen address ("HOST:PORT", "tcp://HOST:PORT", "[::1]:PORT", "ipc://...")
//  stays on this machine: loopback IPv4/IPv6, "localhost", or ipc/inproc.
//  Split a comma list of endpoints (edge/broker, worker/broker) into out[0..max-1].
//  Returns how many the list holds (may be more than max; only max are written).
size_t cfg_endpoints (const char *list, char (*out)[CFG_STR_MAX], size_t max);

bool cfg_is_loopback (const char *endpoint);

const char *cfg_provider_name (cfg_provider_t p);
const char *cfg_limits_failure_name (cfg_limits_failure_t f);
const char *cfg_policy_name (cfg_policy_t p);
//  Parse a policy name; returns 0 and sets *out, or -1.
int cfg_policy_parse (const char *s, cfg_policy_t *out);

#endif
