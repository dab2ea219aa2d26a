// mcpbench: the measuring client of Benchmarks/bench.
//
// It talks to an MCP stdio bridge (agent-sidecar, mcp-proxy) over pipes, the way an MCP host does,
// and to the same upstream directly over HTTP/1.1 keep-alive connections, the way the bridge does.
// Both paths are driven by the same small C code in the same process, so that a difference between
// them is what the bridge adds: driver -> pipe -> bridge -> HTTP -> upstream against
// driver -> HTTP -> upstream. Every result is one JSON object on stdout; Benchmarks/bench.d/bench.py
// runs it and turns the numbers into the table.
//
//   mcpbench cold       --runs N                                    -- BRIDGE ARGV...
//   mcpbench latency    --url URL --era E --calls N [--block B]     -- BRIDGE ARGV...
//   mcpbench throughput --url URL --era E --inflight K --seconds S  -- BRIDGE ARGV...
//   mcpbench memory     --checkpoints 1000,10000 [--inflight K]     -- BRIDGE ARGV...
//   mcpbench big        --url URL --era E --bytes N --runs R        -- BRIDGE ARGV...
//
// --era is the shape of the direct requests: `modern` (2026-07-28, stateless, what agent-sidecar
// speaks to a dual-era upstream) or `legacy` (initialize at 2025-11-25, Mcp-Session-Id, what the
// Python SDK under mcp-proxy speaks). MCPBENCH_BEARER, if set, is sent as `Authorization: Bearer`
// on direct requests. --stderr FILE keeps the bridge's stderr (default /dev/null).
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static const int kTimeoutMs = 60000;

static void die(const char *format, ...) {
    va_list arguments;
    va_start(arguments, format);
    fprintf(stderr, "mcpbench: ");
    vfprintf(stderr, format, arguments);
    fprintf(stderr, "\n");
    va_end(arguments);
    exit(1);
}

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void write_all(int fd, const char *bytes, size_t count) {
    while (count > 0) {
        ssize_t written = write(fd, bytes, count);
        if (written < 0) {
            if (errno == EINTR) continue;
            die("write: %s", strerror(errno));
        }
        bytes += written;
        count -= (size_t)written;
    }
}

// A growable byte buffer with a read position.
typedef struct {
    char *bytes;
    size_t start, end, capacity;
} Buffer;

static void buffer_reserve(Buffer *b, size_t more) {
    if (b->start > 0 && b->start == b->end) b->start = b->end = 0;
    if (b->end + more <= b->capacity) return;
    if (b->start > 0) {
        memmove(b->bytes, b->bytes + b->start, b->end - b->start);
        b->end -= b->start;
        b->start = 0;
        if (b->end + more <= b->capacity) return;
    }
    size_t capacity = b->capacity ? b->capacity : 65536;
    while (capacity < b->end + more) capacity *= 2;
    b->bytes = realloc(b->bytes, capacity);
    if (!b->bytes) die("out of memory");
    b->capacity = capacity;
}

// Reads what is available (waiting up to the timeout for something). Returns bytes read, 0 at EOF.
static ssize_t buffer_fill(Buffer *b, int fd, int timeout_ms) {
    buffer_reserve(b, 65536);
    struct pollfd p = {.fd = fd, .events = POLLIN};
    for (;;) {
        int ready = poll(&p, 1, timeout_ms);
        if (ready < 0 && errno == EINTR) continue;
        if (ready < 0) die("poll: %s", strerror(errno));
        if (ready == 0) die("timed out after %d ms waiting for data", timeout_ms);
        break;
    }
    for (;;) {
        ssize_t count = read(fd, b->bytes + b->end, b->capacity - b->end);
        if (count < 0 && errno == EINTR) continue;
        if (count < 0) die("read: %s", strerror(errno));
        b->end += (size_t)count;
        return count;
    }
}

// ---------------------------------------------------------------------------------------------
// The bridge: a child process with its stdin and stdout on pipes.

typedef struct {
    pid_t pid;
    int to_child, from_child;
    Buffer input;
} Bridge;

static char **bridge_argv;
static const char *bridge_stderr = "/dev/null";

static void bridge_spawn(Bridge *bridge, int64_t *spawned_at) {
    int in[2], out[2];
    if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC)) die("pipe: %s", strerror(errno));
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, in[0], 0);
    posix_spawn_file_actions_adddup2(&actions, out[1], 1);
    posix_spawn_file_actions_addopen(&actions, 2, bridge_stderr, O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (spawned_at) *spawned_at = now_ns();
    int failed = posix_spawnp(&bridge->pid, bridge_argv[0], &actions, NULL, bridge_argv, environ);
    if (failed) die("cannot start %s: %s", bridge_argv[0], strerror(failed));
    posix_spawn_file_actions_destroy(&actions);
    close(in[0]);
    close(out[1]);
    bridge->to_child = in[1];
    bridge->from_child = out[0];
    memset(&bridge->input, 0, sizeof bridge->input);
}

// Closes stdin (the MCP way to ask a stdio server to leave) and waits for the exit, bounded.
static void bridge_stop(Bridge *bridge) {
    close(bridge->to_child);
    int64_t deadline = now_ns() + 5000000000LL;
    for (;;) {
        int status;
        pid_t done = waitpid(bridge->pid, &status, WNOHANG);
        if (done == bridge->pid) break;
        if (now_ns() > deadline) {
            kill(bridge->pid, SIGKILL);
            waitpid(bridge->pid, &status, 0);
            break;
        }
        usleep(2000);
    }
    close(bridge->from_child);
    free(bridge->input.bytes);
}

// The next line from the bridge's stdout (without the newline), valid until the next read.
static char *bridge_line(Bridge *bridge, size_t *length) {
    size_t scanned = 0;
    for (;;) {
        char *start = bridge->input.bytes + bridge->input.start;
        size_t available = bridge->input.end - bridge->input.start;
        char *newline = available > scanned ? memchr(start + scanned, '\n', available - scanned) : NULL;
        if (newline) {
            *length = (size_t)(newline - start);
            *newline = 0;
            bridge->input.start += *length + 1;
            return start;
        }
        scanned = available;
        if (buffer_fill(&bridge->input, bridge->from_child, kTimeoutMs) == 0) die("the bridge closed its stdout");
    }
}

// The JSON-RPC id of a response line, or -1 for a notification or a non-numeric id.
static long line_id(const char *line) {
    const char *found = strstr(line, "\"id\"");
    while (found) {
        const char *p = found + 4;
        while (*p == ' ') p++;
        if (*p == ':') {
            p++;
            while (*p == ' ') p++;
            if (*p >= '0' && *p <= '9') return strtol(p, NULL, 10);
            return -1;
        }
        found = strstr(p, "\"id\"");
    }
    return -1;
}

static int is_response(const char *line) {
    return strstr(line, "\"result\"") != NULL || strstr(line, "\"error\"") != NULL;
}

static int is_success(const char *line) {
    return strstr(line, "\"result\"") != NULL && strstr(line, "\"isError\":true") == NULL &&
           strstr(line, "\"isError\": true") == NULL;
}

// Reads lines until the response to `id`; notifications and log lines in between are skipped.
static char *bridge_response(Bridge *bridge, long id, size_t *length) {
    for (;;) {
        char *line = bridge_line(bridge, length);
        if (is_response(line) && line_id(line) == id) return line;
    }
}

static void bridge_send(Bridge *bridge, const char *line) { write_all(bridge->to_child, line, strlen(line)); }

static const char *kInitialize =
    "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
    "\"capabilities\":{},\"clientInfo\":{\"name\":\"mcpbench\",\"version\":\"1.0.0\"}}}\n";
static const char *kInitialized = "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}\n";

static void bridge_handshake(Bridge *bridge) {
    size_t length;
    bridge_send(bridge, kInitialize);
    char *line = bridge_response(bridge, 0, &length);
    if (!strstr(line, "\"result\"")) die("the bridge refused initialize: %.300s", line);
    bridge_send(bridge, kInitialized);
}

static char tool_arguments[256] = "{\"a\":1,\"b\":2}";
static const char *tool_name = "add";

static int bridge_call_line(char *out, size_t capacity, long id) {
    return snprintf(out, capacity,
                    "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":%s}}\n", id,
                    tool_name, tool_arguments);
}

// ---------------------------------------------------------------------------------------------
// The direct path: HTTP/1.1 keep-alive to the upstream's /mcp.

static char url_host[64] = "127.0.0.1";
static int url_port;
static char url_path[256] = "/mcp";
static int era_modern = 1;
static char session_id[128];
static long idempotency_counter;

static void parse_url(const char *url) {
    if (strncmp(url, "http://", 7) != 0) die("--url must be http://HOST:PORT/PATH");
    const char *host = url + 7;
    const char *colon = strchr(host, ':');
    const char *slash = strchr(host, '/');
    if (!colon || !slash || colon > slash) die("--url needs a port and a path");
    snprintf(url_host, sizeof url_host, "%.*s", (int)(colon - host), host);
    url_port = atoi(colon + 1);
    snprintf(url_path, sizeof url_path, "%s", slash);
}

typedef struct {
    int fd;
    Buffer input;
    // Parsed response, valid after http_parse returns 1.
    int status;
    size_t body_offset, body_length, total_length;
    char *decoded;  // a de-chunked body, when the response was chunked
} Connection;

static void connection_open(Connection *c) {
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0) die("socket: %s", strerror(errno));
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons((uint16_t)url_port)};
    inet_pton(AF_INET, url_host, &address.sin_addr);
    if (connect(c->fd, (struct sockaddr *)&address, sizeof address)) die("connect %s:%d: %s", url_host, url_port, strerror(errno));
}

static void connection_close(Connection *c) {
    close(c->fd);
    free(c->input.bytes);
    free(c->decoded);
}

// Finds a header's value in a header block (case-insensitive name). Returns its length or -1.
static int header_value(const char *head, size_t head_length, const char *name, const char **value) {
    size_t name_length = strlen(name);
    const char *end = head + head_length;
    const char *line = memchr(head, '\n', head_length);
    while (line && line + 1 < end) {
        line++;
        if ((size_t)(end - line) > name_length && strncasecmp(line, name, name_length) == 0 && line[name_length] == ':') {
            const char *v = line + name_length + 1;
            while (v < end && (*v == ' ' || *v == '\t')) v++;
            const char *stop = v;
            while (stop < end && *stop != '\r' && *stop != '\n') stop++;
            *value = v;
            return (int)(stop - v);
        }
        line = memchr(line, '\n', (size_t)(end - line));
    }
    return -1;
}

// Parses one complete response at the buffer's start. 0 = need more bytes, 1 = complete.
static int http_parse(Connection *c) {
    char *start = c->input.bytes + c->input.start;
    size_t available = c->input.end - c->input.start;
    char *head_end = available >= 4 ? memmem(start, available, "\r\n\r\n", 4) : NULL;
    if (!head_end) return 0;
    size_t head_length = (size_t)(head_end - start) + 4;
    if (available < 12 || strncmp(start, "HTTP/1.1 ", 9) != 0) die("not an HTTP/1.1 response: %.40s", start);
    c->status = atoi(start + 9);
    const char *value;
    int length = header_value(start, head_length, "content-length", &value);
    if (length >= 0) {
        size_t body = strtoul(value, NULL, 10);
        if (available < head_length + body) {
            buffer_reserve(&c->input, head_length + body - available);
            return 0;
        }
        c->body_offset = head_length;
        c->body_length = body;
        c->total_length = head_length + body;
        return 1;
    }
    length = header_value(start, head_length, "transfer-encoding", &value);
    if (length >= 7 && strncasecmp(value, "chunked", 7) == 0) {
        // Walk the chunks; complete when the zero chunk and its trailer end are in the buffer.
        size_t position = head_length, decoded = 0;
        for (;;) {
            char *line_end = memmem(start + position, available - position, "\r\n", 2);
            if (!line_end) return 0;
            size_t chunk = strtoul(start + position, NULL, 16);
            size_t data = (size_t)(line_end - start) + 2;
            if (chunk == 0) {
                if (available < data + 2) return 0;
                position = data + 2;
                break;
            }
            if (available < data + chunk + 2) return 0;
            decoded += chunk;
            position = data + chunk + 2;
        }
        free(c->decoded);
        c->decoded = malloc(decoded + 1);
        size_t at = head_length, filled = 0;
        for (;;) {
            char *line_end = memmem(start + at, position - at, "\r\n", 2);
            size_t chunk = strtoul(start + at, NULL, 16);
            if (chunk == 0) break;
            size_t data = (size_t)(line_end - start) + 2;
            memcpy(c->decoded + filled, start + data, chunk);
            filled += chunk;
            at = data + chunk + 2;
        }
        c->decoded[filled] = 0;
        c->body_offset = 0;
        c->body_length = filled;
        c->total_length = position;
        return 2;
    }
    // No length: a body-less status (202, 204).
    c->body_offset = head_length;
    c->body_length = 0;
    c->total_length = head_length;
    return 1;
}

static const char *http_body(Connection *c, int parsed) {
    return parsed == 2 ? c->decoded : c->input.bytes + c->input.start + c->body_offset;
}

static void http_consume(Connection *c) { c->input.start += c->total_length; }

// Builds a POST like the one the bridge sends for `method`.
static int http_request(char *out, size_t capacity, const char *method, const char *tool, const char *body) {
    const char *bearer = getenv("MCPBENCH_BEARER");
    char authorization[512] = "";
    if (bearer && *bearer) snprintf(authorization, sizeof authorization, "Authorization: Bearer %s\r\n", bearer);
    char era_headers[512];
    if (era_modern) {
        snprintf(era_headers, sizeof era_headers, "MCP-Protocol-Version: 2026-07-28\r\nMcp-Method: %s\r\n%s%s%s", method,
                 tool ? "Mcp-Name: " : "", tool ? tool : "", tool ? "\r\n" : "");
    } else if (session_id[0]) {
        snprintf(era_headers, sizeof era_headers, "MCP-Protocol-Version: 2025-11-25\r\nMcp-Session-Id: %s\r\n", session_id);
    } else {
        era_headers[0] = 0;
    }
    char idempotency[64] = "";
    if (tool) snprintf(idempotency, sizeof idempotency, "Idempotency-Key: 01BENCH%019ld\r\n", ++idempotency_counter);
    return snprintf(out, capacity,
                    "POST %s HTTP/1.1\r\nHost: %s:%d\r\n%s%sContent-Type: application/json\r\n"
                    "Accept: application/json, text/event-stream\r\n%sContent-Length: %zu\r\n\r\n%s",
                    url_path, url_host, url_port, authorization, era_headers, idempotency, strlen(body), body);
}

static const char *kModernMeta =
    "\"_meta\":{\"io.modelcontextprotocol/protocolVersion\":\"2026-07-28\",\"io.modelcontextprotocol/clientCapabilities\":{},"
    "\"io.modelcontextprotocol/clientInfo\":{\"name\":\"mcpbench\",\"version\":\"1.0.0\"}}";

// The bytes of one direct tools/call request.
static int direct_call_request(char *out, size_t capacity, long id) {
    char body[1024];
    if (era_modern) {
        snprintf(body, sizeof body,
                 "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":%s,%s}}", id,
                 tool_name, tool_arguments, kModernMeta);
    } else {
        snprintf(body, sizeof body, "{\"jsonrpc\":\"2.0\",\"id\":%ld,\"method\":\"tools/call\",\"params\":{\"name\":\"%s\",\"arguments\":%s}}",
                 id, tool_name, tool_arguments);
    }
    return http_request(out, capacity, "tools/call", tool_name, body);
}

// One blocking exchange on a connection. Returns the parse kind (1 or 2); the body via http_body.
static int http_exchange(Connection *c, const char *request, int request_length) {
    write_all(c->fd, request, (size_t)request_length);
    for (;;) {
        int parsed = http_parse(c);
        if (parsed) return parsed;
        if (buffer_fill(&c->input, c->fd, kTimeoutMs) == 0) die("the upstream closed the connection");
    }
}

// Legacy era: initialize once and keep the session for every direct connection.
static void direct_handshake(void) {
    if (era_modern) return;
    Connection c;
    connection_open(&c);
    char request[4096];
    const char *initialize =
        "{\"jsonrpc\":\"2.0\",\"id\":0,\"method\":\"initialize\",\"params\":{\"protocolVersion\":\"2025-11-25\","
        "\"capabilities\":{},\"clientInfo\":{\"name\":\"mcpbench\",\"version\":\"1.0.0\"}}}";
    int length = http_request(request, sizeof request, "initialize", NULL, initialize);
    http_exchange(&c, request, length);
    const char *value;
    char *start = c.input.bytes + c.input.start;
    int found = header_value(start, c.body_offset, "mcp-session-id", &value);
    if (c.status != 200 || found <= 0) die("direct initialize failed (HTTP %d)", c.status);
    snprintf(session_id, sizeof session_id, "%.*s", found, value);
    http_consume(&c);
    length = http_request(request, sizeof request, "notifications/initialized", NULL, "{\"jsonrpc\":\"2.0\",\"method\":\"notifications/initialized\"}");
    http_exchange(&c, request, length);
    http_consume(&c);
    connection_close(&c);
}

// ---------------------------------------------------------------------------------------------
// Memory of a process tree, from /proc.

static long status_field_kb(pid_t pid, const char *field) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/status", pid);
    FILE *file = fopen(path, "r");
    if (!file) return 0;
    char line[256];
    long value = 0;
    size_t length = strlen(field);
    while (fgets(line, sizeof line, file)) {
        if (strncmp(line, field, length) == 0 && line[length] == ':') {
            value = strtol(line + length + 1, NULL, 10);
            break;
        }
    }
    fclose(file);
    return value;
}

// Sum over the process and its descendants (mcp-proxy may run helpers; agent-sidecar runs none).
static long tree_kb(pid_t pid, const char *field) {
    long total = status_field_kb(pid, field);
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", pid, pid);
    FILE *file = fopen(path, "r");
    if (!file) return total;
    int child;
    while (fscanf(file, "%d", &child) == 1) total += tree_kb(child, field);
    fclose(file);
    return total;
}

static void reset_peak(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/clear_refs", pid);
    int fd = open(path, O_WRONLY);
    if (fd < 0) die("cannot open %s to reset the peak RSS: %s", path, strerror(errno));
    write_all(fd, "5", 1);
    close(fd);
}

// CPU time (user + system, all threads) of a process, in nanoseconds.
static int64_t process_cpu_ns(pid_t pid) {
    char path[64], text[1024];
    snprintf(path, sizeof path, "/proc/%d/stat", pid);
    FILE *file = fopen(path, "r");
    if (!file) return 0;
    size_t count = fread(text, 1, sizeof text - 1, file);
    fclose(file);
    text[count] = 0;
    char *after = strrchr(text, ')');  // the command name may hold spaces
    if (!after) return 0;
    unsigned long long user = 0, system = 0;
    // Fields after the name: state(3) ... utime(14) stime(15).
    if (sscanf(after + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &user, &system) != 2) return 0;
    return (int64_t)(user + system) * (1000000000LL / sysconf(_SC_CLK_TCK));
}

// Voluntary context switches (a thread blocked and was woken) summed over a process's threads.
static long process_voluntary_switches(pid_t pid) {
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/task", pid);
    DIR *tasks = opendir(path);
    if (!tasks) return 0;
    long total = 0;
    struct dirent *entry;
    while ((entry = readdir(tasks))) {
        if (entry->d_name[0] < '0' || entry->d_name[0] > '9') continue;
        char status[300], line[256];
        snprintf(status, sizeof status, "/proc/%d/task/%s/status", pid, entry->d_name);
        FILE *file = fopen(status, "r");
        if (!file) continue;
        while (fgets(line, sizeof line, file)) {
            if (strncmp(line, "voluntary_ctxt_switches:", 24) == 0) total += strtol(line + 24, NULL, 10);
        }
        fclose(file);
    }
    closedir(tasks);
    return total;
}

// ---------------------------------------------------------------------------------------------
// Statistics.

static int compare_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t percentile(int64_t *sorted, size_t count, double q) {
    size_t index = (size_t)(q * (double)(count - 1) + 0.5);
    return sorted[index];
}

static void print_distribution(const char *name, int64_t *values, size_t count) {
    qsort(values, count, sizeof *values, compare_i64);
    double mean = 0;
    for (size_t i = 0; i < count; i++) mean += (double)values[i];
    mean /= (double)count;
    printf("\"%s\":{\"count\":%zu,\"p50Us\":%.2f,\"p90Us\":%.2f,\"p99Us\":%.2f,\"minUs\":%.2f,\"maxUs\":%.2f,\"meanUs\":%.2f}", name, count,
           percentile(values, count, 0.50) / 1e3, percentile(values, count, 0.90) / 1e3, percentile(values, count, 0.99) / 1e3,
           values[0] / 1e3, values[count - 1] / 1e3, mean / 1e3);
}

// ---------------------------------------------------------------------------------------------
// Modes.

static int option_runs = 30, option_calls = 10000, option_block = 100, option_inflight = 1, option_bytes = 10000000;
static double option_seconds = 3;
static char option_checkpoints[256] = "1000,10000,100000";

// Spawn -> initialize response, and spawn -> first tools/list response (sent after initialized).
static void mode_cold(void) {
    printf("{\"runs\":[");
    for (int run = 0; run < option_runs; run++) {
        Bridge bridge;
        int64_t spawned;
        bridge_spawn(&bridge, &spawned);
        size_t length;
        bridge_send(&bridge, kInitialize);
        char *line = bridge_response(&bridge, 0, &length);
        int64_t initialized = now_ns();
        if (!strstr(line, "\"result\"")) die("initialize failed: %.300s", line);
        bridge_send(&bridge, kInitialized);
        bridge_send(&bridge, "{\"jsonrpc\":\"2.0\",\"id\":1,\"method\":\"tools/list\"}\n");
        line = bridge_response(&bridge, 1, &length);
        int64_t listed = now_ns();
        if (!strstr(line, "\"tools\"")) die("tools/list failed: %.300s", line);
        long rss = tree_kb(bridge.pid, "VmRSS");
        bridge_stop(&bridge);
        printf("%s{\"initializeMs\":%.3f,\"toolsListMs\":%.3f,\"rssKB\":%ld}", run ? "," : "", (initialized - spawned) / 1e6,
               (listed - spawned) / 1e6, rss);
        fflush(stdout);
    }
    printf("]}\n");
}

// Sequential calls, alternating blocks of bridge and direct calls, same arguments, same run.
static void mode_latency(void) {
    Bridge bridge;
    bridge_spawn(&bridge, NULL);
    bridge_handshake(&bridge);
    direct_handshake();
    Connection c;
    connection_open(&c);
    int64_t *via_bridge = calloc((size_t)option_calls, sizeof(int64_t));
    int64_t *direct = calloc((size_t)option_calls, sizeof(int64_t));
    char line[2048], request[4096];
    long id = 10;
    int bridge_failures = 0, direct_failures = 0;
    // Warm-up: connections, caches, the upstream's JIT-free but allocation-heavy first calls.
    int warmup = option_calls / 10 < 200 ? option_calls / 10 : 200;
    for (int i = 0; i < warmup; i++) {
        size_t length;
        bridge_call_line(line, sizeof line, ++id);
        bridge_send(&bridge, line);
        bridge_response(&bridge, id, &length);
        int request_length = direct_call_request(request, sizeof request, ++id);
        http_exchange(&c, request, request_length);
        http_consume(&c);
    }
    int64_t cpu_before = process_cpu_ns(bridge.pid);
    long switches_before = process_voluntary_switches(bridge.pid);
    for (int done = 0; done < option_calls;) {
        int block = option_block < option_calls - done ? option_block : option_calls - done;
        for (int i = 0; i < block; i++) {
            size_t length;
            snprintf(tool_arguments, sizeof tool_arguments, "{\"a\":%d,\"b\":%d}", done + i, 1);
            int line_length = bridge_call_line(line, sizeof line, ++id);
            int64_t started = now_ns();
            write_all(bridge.to_child, line, (size_t)line_length);
            char *response = bridge_response(&bridge, id, &length);
            via_bridge[done + i] = now_ns() - started;
            if (!is_success(response)) bridge_failures++;
        }
        for (int i = 0; i < block; i++) {
            snprintf(tool_arguments, sizeof tool_arguments, "{\"a\":%d,\"b\":%d}", done + i, 1);
            int request_length = direct_call_request(request, sizeof request, ++id);
            int64_t started = now_ns();
            int parsed = http_exchange(&c, request, request_length);
            direct[done + i] = now_ns() - started;
            if (c.status != 200 || !is_success(http_body(&c, parsed))) direct_failures++;
            http_consume(&c);
        }
        done += block;
    }
    // The bridge idles while the direct blocks run, so its CPU time over the loop is that of its calls.
    double cpu_per_call_us = (process_cpu_ns(bridge.pid) - cpu_before) / 1e3 / option_calls;
    double switches_per_call = (double)(process_voluntary_switches(bridge.pid) - switches_before) / option_calls;
    long rss = tree_kb(bridge.pid, "VmRSS");
    bridge_stop(&bridge);
    connection_close(&c);
    printf("{");
    print_distribution("bridge", via_bridge, (size_t)option_calls);
    printf(",");
    print_distribution("direct", direct, (size_t)option_calls);
    printf(",\"bridgeFailures\":%d,\"directFailures\":%d,\"bridgeRssKB\":%ld,\"bridgeCpuUsPerCall\":%.1f,"
           "\"bridgeVoluntarySwitchesPerCall\":%.2f}\n",
           bridge_failures, direct_failures, rss, cpu_per_call_us, switches_per_call);
}

// `inflight` calls always outstanding on the bridge's stdin for `seconds`.
static double bridge_throughput(Bridge *bridge, int *failures) {
    char line[2048];
    long id = 1000;
    long sent = 0, received = 0;
    int64_t started = now_ns(), deadline = started + (int64_t)(option_seconds * 1e9);
    for (int i = 0; i < option_inflight; i++) {
        bridge_call_line(line, sizeof line, ++id);
        bridge_send(bridge, line);
        sent++;
    }
    while (received < sent) {
        size_t length;
        char *response = bridge_line(bridge, &length);
        if (!is_response(response)) continue;
        if (!is_success(response)) (*failures)++;
        received++;
        int64_t now = now_ns();
        if (now < deadline) {
            bridge_call_line(line, sizeof line, ++id);
            bridge_send(bridge, line);
            sent++;
        }
    }
    // Count the calls answered within the window, over the window.
    int64_t elapsed = now_ns() - started;
    return (double)received / (elapsed / 1e9);
}

// `inflight` keep-alive connections, each with one call outstanding, driven by one epoll loop.
static double direct_throughput(int *failures) {
    int epoll = epoll_create1(EPOLL_CLOEXEC);
    Connection *connections = calloc((size_t)option_inflight, sizeof(Connection));
    char request[4096];
    long id = 1000;
    int64_t started = now_ns(), deadline = started + (int64_t)(option_seconds * 1e9);
    long received = 0;
    int open = option_inflight;
    for (int i = 0; i < option_inflight; i++) {
        connection_open(&connections[i]);
        struct epoll_event event = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        epoll_ctl(epoll, EPOLL_CTL_ADD, connections[i].fd, &event);
    }
    started = now_ns();
    deadline = started + (int64_t)(option_seconds * 1e9);
    for (int i = 0; i < option_inflight; i++) {
        int length = direct_call_request(request, sizeof request, ++id);
        write_all(connections[i].fd, request, (size_t)length);
    }
    struct epoll_event events[64];
    while (open > 0) {
        int count = epoll_wait(epoll, events, 64, kTimeoutMs);
        if (count < 0 && errno == EINTR) continue;
        if (count <= 0) die("direct throughput: timed out");
        for (int e = 0; e < count; e++) {
            Connection *c = &connections[events[e].data.u32];
            buffer_reserve(&c->input, 65536);
            ssize_t n = read(c->fd, c->input.bytes + c->input.end, c->input.capacity - c->input.end);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) die("direct throughput: the upstream closed a connection");
            c->input.end += (size_t)n;
            int parsed;
            while ((parsed = http_parse(c))) {
                if (c->status != 200 || !is_success(http_body(c, parsed))) (*failures)++;
                http_consume(c);
                received++;
                if (now_ns() < deadline) {
                    int length = direct_call_request(request, sizeof request, ++id);
                    write_all(c->fd, request, (size_t)length);
                } else {
                    open--;
                }
            }
        }
    }
    int64_t elapsed = now_ns() - started;
    for (int i = 0; i < option_inflight; i++) connection_close(&connections[i]);
    free(connections);
    close(epoll);
    return (double)received / (elapsed / 1e9);
}

static void mode_throughput(void) {
    Bridge bridge;
    bridge_spawn(&bridge, NULL);
    bridge_handshake(&bridge);
    direct_handshake();
    int bridge_failures = 0, direct_failures = 0;
    // Warm both paths up with the same concurrency (the bridge opens its connections here).
    double seconds = option_seconds;
    option_seconds = 0.3;
    bridge_throughput(&bridge, &bridge_failures);
    direct_throughput(&direct_failures);
    option_seconds = seconds;
    bridge_failures = direct_failures = 0;
    int64_t cpu_before = process_cpu_ns(bridge.pid), started = now_ns();
    double via_bridge = bridge_throughput(&bridge, &bridge_failures);
    double calls = via_bridge * (now_ns() - started) / 1e9;
    double cpu_per_call_us = (process_cpu_ns(bridge.pid) - cpu_before) / 1e3 / calls;
    double direct = direct_throughput(&direct_failures);
    bridge_stop(&bridge);
    printf("{\"inflight\":%d,\"bridgeCallsPerSecond\":%.1f,\"directCallsPerSecond\":%.1f,\"bridgeFailures\":%d,\"directFailures\":%d,"
           "\"bridgeCpuUsPerCall\":%.1f}\n",
           option_inflight, via_bridge, direct, bridge_failures, direct_failures, cpu_per_call_us);
}

// RSS of the bridge after 1k, 10k, 100k calls (with `inflight` outstanding, drained at each checkpoint).
static void mode_memory(void) {
    Bridge bridge;
    bridge_spawn(&bridge, NULL);
    bridge_handshake(&bridge);
    char line[2048];
    long id = 10, sent = 0, received = 0;
    int failures = 0;
    usleep(200000);
    printf("{\"baselineKB\":%ld,\"checkpoints\":[", tree_kb(bridge.pid, "VmRSS"));
    char *cursor = option_checkpoints;
    int first = 1;
    while (*cursor) {
        long target = strtol(cursor, &cursor, 10);
        if (*cursor == ',') cursor++;
        while (received < target) {
            while (sent < target && sent - received < option_inflight) {
                snprintf(tool_arguments, sizeof tool_arguments, "{\"a\":%ld,\"b\":%d}", sent, 1);
                bridge_call_line(line, sizeof line, ++id);
                bridge_send(&bridge, line);
                sent++;
            }
            size_t length;
            char *response = bridge_line(&bridge, &length);
            if (!is_response(response)) continue;
            if (!is_success(response)) failures++;
            received++;
        }
        usleep(200000);  // let the bridge settle (freed buffers, idle threads)
        printf("%s{\"calls\":%ld,\"rssKB\":%ld,\"anonKB\":%ld,\"fileKB\":%ld,\"peakKB\":%ld}", first ? "" : ",", received,
               tree_kb(bridge.pid, "VmRSS"), tree_kb(bridge.pid, "RssAnon"), tree_kb(bridge.pid, "RssFile"), tree_kb(bridge.pid, "VmHWM"));
        fflush(stdout);
        first = 0;
    }
    bridge_stop(&bridge);
    printf("],\"failures\":%d}\n", failures);
}

// One large tool result: time through the bridge and direct, and the bridge's peak RSS above its baseline.
static void mode_big(void) {
    Bridge bridge;
    bridge_spawn(&bridge, NULL);
    bridge_handshake(&bridge);
    direct_handshake();
    Connection c;
    connection_open(&c);
    char line[2048], request[4096];
    long id = 10;
    size_t length;
    tool_name = "big";
    // Warm-up with a small result, so that the baseline has the connection and its buffers.
    snprintf(tool_arguments, sizeof tool_arguments, "{\"bytes\":%d}", 1000);
    bridge_call_line(line, sizeof line, ++id);
    bridge_send(&bridge, line);
    bridge_response(&bridge, id, &length);
    usleep(200000);
    long baseline = tree_kb(bridge.pid, "VmRSS");
    snprintf(tool_arguments, sizeof tool_arguments, "{\"bytes\":%d}", option_bytes);
    printf("{\"bytes\":%d,\"baselineKB\":%ld,\"runs\":[", option_bytes, baseline);
    for (int run = 0; run < option_runs; run++) {
        long before = tree_kb(bridge.pid, "VmRSS");
        reset_peak(bridge.pid);
        int line_length = bridge_call_line(line, sizeof line, ++id);
        int64_t started = now_ns();
        write_all(bridge.to_child, line, (size_t)line_length);
        char *response = bridge_response(&bridge, id, &length);
        int64_t via_bridge = now_ns() - started;
        if (length < (size_t)option_bytes || !strstr(response, "\"result\"")) die("the bridge's big result is short: %zu bytes", length);
        long peak = tree_kb(bridge.pid, "VmHWM");
        int request_length = direct_call_request(request, sizeof request, ++id);
        started = now_ns();
        int parsed = http_exchange(&c, request, request_length);
        int64_t direct = now_ns() - started;
        if (c.status != 200 || c.body_length < (size_t)option_bytes) die("the direct big result failed (HTTP %d)", c.status);
        (void)parsed;
        http_consume(&c);
        usleep(100000);
        long after = tree_kb(bridge.pid, "VmRSS");
        printf("%s{\"bridgeMs\":%.2f,\"directMs\":%.2f,\"responseBytes\":%zu,\"rssBeforeKB\":%ld,\"peakKB\":%ld,\"rssAfterKB\":%ld}",
               run ? "," : "", via_bridge / 1e6, direct / 1e6, length, before, peak, after);
        fflush(stdout);
    }
    bridge_stop(&bridge);
    connection_close(&c);
    printf("]}\n");
}

int main(int argc, char **argv) {
    if (argc < 2) die("usage: mcpbench cold|latency|throughput|memory|big [options] -- BRIDGE ARGV...");
    signal(SIGPIPE, SIG_IGN);
    const char *mode = argv[1];
    int i = 2;
    for (; i < argc; i++) {
        const char *option = argv[i];
        if (strcmp(option, "--") == 0) {
            i++;
            break;
        }
        if (i + 1 >= argc) die("%s needs a value", option);
        const char *value = argv[++i];
        if (strcmp(option, "--runs") == 0) option_runs = atoi(value);
        else if (strcmp(option, "--calls") == 0) option_calls = atoi(value);
        else if (strcmp(option, "--block") == 0) option_block = atoi(value);
        else if (strcmp(option, "--inflight") == 0) option_inflight = atoi(value);
        else if (strcmp(option, "--seconds") == 0) option_seconds = atof(value);
        else if (strcmp(option, "--bytes") == 0) option_bytes = atoi(value);
        else if (strcmp(option, "--checkpoints") == 0) snprintf(option_checkpoints, sizeof option_checkpoints, "%s", value);
        else if (strcmp(option, "--url") == 0) parse_url(value);
        else if (strcmp(option, "--era") == 0) era_modern = strcmp(value, "modern") == 0;
        else if (strcmp(option, "--stderr") == 0) bridge_stderr = value;
        else die("unknown option %s", option);
    }
    if (i >= argc) die("give the bridge's command after --");
    bridge_argv = argv + i;
    if (strcmp(mode, "cold") == 0) mode_cold();
    else if (strcmp(mode, "latency") == 0) mode_latency();
    else if (strcmp(mode, "throughput") == 0) mode_throughput();
    else if (strcmp(mode, "memory") == 0) mode_memory();
    else if (strcmp(mode, "big") == 0) mode_big();
    else die("unknown mode %s", mode);
    return 0;
}
