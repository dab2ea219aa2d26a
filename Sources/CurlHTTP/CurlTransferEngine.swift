import CCurl
import CurlShim
import SodiumKit
import Synchronization
import SystemSupport

/// Runs every HTTP transfer of one client on a single libcurl multi handle, driven by one
/// dedicated thread. The multi handle keeps the connection cache, so connections are reused
/// (keep-alive, HTTP/2 multiplexing where the server offers it). Callers submit transfers and
/// cancel them from any thread; all curl calls happen on the engine thread.
final class CurlTransferEngine: @unchecked Sendable {
    private struct Commands {
        var submitted: [CurlTransfer] = []
        var cancelled: [ObjectIdentifier] = []
    }

    /// libcurl with an allocator that zeroes every block it frees or moves, so the copies libcurl
    /// makes of a request (the header list, the request buffer) do not outlive the request in freed heap.
    private static let globalInit: Void = {
        curlshim_global_init_zeroing(Int(CURL_GLOBAL_DEFAULT))
    }()

    private let multi: UnsafeMutableRawPointer
    private let commands = Mutex(Commands())
    private let configuration: HTTPClientConfiguration
    // Engine-thread state.
    private var active: [ObjectIdentifier: CurlTransfer] = [:]
    private var idleHandles: [UnsafeMutableRawPointer] = []
    private let caBundle: [UInt8]?

    init(configuration: HTTPClientConfiguration) {
        _ = Self.globalInit
        self.configuration = configuration
        self.multi = curl_multi_init()!
        curlshim_multi_setopt_long(multi, CURLMOPT_PIPELINING, Int(CURLPIPE_MULTIPLEX))
        // At most this many connections to one host: more concurrent calls wait in libcurl's queue
        // (their request timeout counts the wait). An HTTP/1.1 upstream would otherwise get one
        // connection per concurrent call, and a burst of 1,000 calls would take 1,000 descriptors
        // here and run into the gateway's per-address connection cap (128 by default).
        curlshim_multi_setopt_long(multi, CURLMOPT_MAX_HOST_CONNECTIONS, 32)
        if let extra = configuration.additionalCertificateAuthorities {
            // CURLOPT_CAINFO_BLOB replaces the bundle, so add the system's own first.
            var bundle = (try? FileSystem.readRequiredFile(systemCertificateBundlePath)) ?? []
            bundle.append(0x0A)
            bundle.append(contentsOf: extra)
            self.caBundle = bundle
        } else {
            self.caBundle = nil
        }
        startDetachedThread(name: "curl-engine") { [self] in self.run() }
    }

    func submit(_ transfer: CurlTransfer) {
        commands.withLock { $0.submitted.append(transfer) }
        curl_multi_wakeup(multi)
    }

    func cancel(_ transfer: CurlTransfer) {
        commands.withLock { $0.cancelled.append(ObjectIdentifier(transfer)) }
        curl_multi_wakeup(multi)
    }

    private func run() {
        var running: Int32 = 0
        while true {
            let pending = commands.withLock { commands -> Commands in
                let taken = commands
                commands = Commands()
                return taken
            }
            for transfer in pending.submitted { start(transfer) }
            for identifier in pending.cancelled {
                guard let transfer = active.removeValue(forKey: identifier) else { continue }
                curl_multi_remove_handle(multi, transfer.easy)
                recycle(transfer)
                transfer.finish(throwing: CancellationError())
            }
            curl_multi_perform(multi, &running)
            var remaining: Int32 = 0
            while let message = curl_multi_info_read(multi, &remaining) {
                guard message.pointee.msg == CURLMSG_DONE else { continue }
                let easy = message.pointee.easy_handle
                let result = message.pointee.data.result
                var privatePointer: UnsafeMutableRawPointer?
                curlshim_easy_getinfo_pointer(easy, CURLINFO_PRIVATE, &privatePointer)
                guard let privatePointer else { continue }
                let transfer = Unmanaged<CurlTransfer>.fromOpaque(privatePointer).takeUnretainedValue()
                active.removeValue(forKey: ObjectIdentifier(transfer))
                curl_multi_remove_handle(multi, easy)
                transfer.complete(result: result)
                recycle(transfer)
            }
            curl_multi_poll(multi, nil, 0, 1000, nil)
        }
    }

    private func start(_ transfer: CurlTransfer) {
        let easy: UnsafeMutableRawPointer
        if let reused = idleHandles.popLast() {
            curl_easy_reset(reused)
            easy = reused
        } else {
            easy = curl_easy_init()
        }
        transfer.easy = easy
        let request = transfer.request
        curlshim_easy_setopt_pointer(easy, CURLOPT_PRIVATE, Unmanaged.passUnretained(transfer).toOpaque())
        _ = request.url.withCString { curlshim_easy_setopt_pointer(easy, CURLOPT_URL, $0) }
        _ = "http,https".withCString { curlshim_easy_setopt_pointer(easy, CURLOPT_PROTOCOLS_STR, $0) }
        curlshim_easy_setopt_long(easy, CURLOPT_NOSIGNAL, 1)
        curlshim_easy_setopt_long(easy, CURLOPT_TCP_NODELAY, 1)
        curlshim_easy_setopt_long(easy, CURLOPT_FOLLOWLOCATION, 0)
        curlshim_easy_setopt_long(easy, CURLOPT_SSL_VERIFYPEER, 1)
        curlshim_easy_setopt_long(easy, CURLOPT_SSL_VERIFYHOST, 2)
        curlshim_easy_setopt_long(easy, CURLOPT_HTTP_VERSION, Int(CURL_HTTP_VERSION_2TLS))
        curlshim_easy_setopt_long(easy, CURLOPT_PIPEWAIT, 1)
        curlshim_easy_setopt_long(easy, CURLOPT_BUFFERSIZE, 256 * 1024)
        curlshim_easy_setopt_long(easy, CURLOPT_CONNECTTIMEOUT_MS, configuration.connectTimeout.milliseconds)
        curlshim_easy_setopt_long(easy, CURLOPT_TIMEOUT_MS, (request.timeout ?? configuration.requestTimeout).milliseconds)
        if let caBundle {
            caBundle.withUnsafeBytes { _ = curlshim_easy_setopt_blob(easy, CURLOPT_CAINFO_BLOB, $0.baseAddress, $0.count) }
        }
        curlshim_easy_setopt_pointer(easy, CURLOPT_ERRORBUFFER, transfer.errorBuffer)
        switch request.method {
        case "GET": curlshim_easy_setopt_long(easy, CURLOPT_HTTPGET, 1)
        case "POST":
            curlshim_easy_setopt_long(easy, CURLOPT_POST, 1)
        default:
            _ = request.method.withCString { curlshim_easy_setopt_pointer(easy, CURLOPT_CUSTOMREQUEST, $0) }
        }
        if request.method != "GET", request.method != "DELETE" || !request.body.isEmpty {
            curlshim_easy_setopt_offset(easy, CURLOPT_POSTFIELDSIZE_LARGE, curl_off_t(request.body.count))
            request.body.withUnsafeBytes { bytes in
                // COPYPOSTFIELDS copies, so the body need not outlive this call.
                _ = curlshim_easy_setopt_pointer(easy, CURLOPT_COPYPOSTFIELDS, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1)!)
            }
        }
        var list: UnsafeMutablePointer<curl_slist>?
        for header in request.headers {
            if let secret = header.secret {
                list = Self.appendSecretLine(list, name: header.name, secret: secret)
                continue
            }
            // "Name:" with nothing after it tells curl to drop the header; "Name;" sends it empty.
            let line = header.value.isEmpty ? "\(header.name);" : "\(header.name): \(header.value)"
            list = line.withCString { curl_slist_append(list, $0) }
        }
        // curl adds "Expect: 100-continue" to large POSTs; it only costs a round trip here.
        list = "Expect:".withCString { curl_slist_append(list, $0) }
        transfer.headerList = list
        curlshim_easy_setopt_pointer(easy, CURLOPT_HTTPHEADER, list)
        curlshim_easy_setopt_write_function(easy, curlWriteCallback)
        curlshim_easy_setopt_pointer(easy, CURLOPT_WRITEDATA, Unmanaged.passUnretained(transfer).toOpaque())
        curlshim_easy_setopt_header_function(easy, curlHeaderCallback)
        curlshim_easy_setopt_pointer(easy, CURLOPT_HEADERDATA, Unmanaged.passUnretained(transfer).toOpaque())
        transfer.maximumResponseBytes = configuration.maximumResponseBytes
        active[ObjectIdentifier(transfer)] = transfer
        curl_multi_add_handle(multi, easy)
    }

    /// Appends `Name: <secret>` to the list. The line is assembled in a plain buffer that is
    /// zeroed and freed as soon as libcurl has its own copy (which the zeroing allocator wipes).
    private static func appendSecretLine(
        _ list: UnsafeMutablePointer<curl_slist>?, name: String, secret: SecretBytes
    )
        -> UnsafeMutablePointer<curl_slist>?
    {
        let prefix = Array((name + ": ").utf8)
        return secret.withUnsafeBytes { value -> UnsafeMutablePointer<curl_slist>? in
            let size = prefix.count + value.count + 1
            let line = UnsafeMutableRawBufferPointer.allocate(byteCount: size, alignment: 1)
            defer {
                curlshim_secure_zero(line.baseAddress, size)
                line.deallocate()
            }
            line.copyBytes(from: prefix)
            UnsafeMutableRawBufferPointer(rebasing: line[prefix.count..<(prefix.count + value.count)]).copyMemory(from: value)
            line[size - 1] = 0
            return curl_slist_append(list, line.baseAddress!.assumingMemoryBound(to: CChar.self))
        }
    }

    private func recycle(_ transfer: CurlTransfer) {
        if let list = transfer.headerList {
            curl_slist_free_all(list)
            transfer.headerList = nil
        }
        if let easy = transfer.easy {
            if idleHandles.count < 64 { idleHandles.append(easy) } else { curl_easy_cleanup(easy) }
            transfer.easy = nil
        }
    }
}

let systemCertificateBundlePath = "/etc/ssl/certs/ca-certificates.crt"

extension Duration {
    /// Whole milliseconds (libcurl's timeouts).
    public var milliseconds: Int {
        let (seconds, attoseconds) = components
        return Int(seconds) * 1000 + Int(attoseconds / 1_000_000_000_000_000)
    }
}

private let curlWriteCallback: curl_write_callback = { data, size, count, userData in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userData!).takeUnretainedValue()
    let length = size * count
    guard let data else { return length }
    return transfer.receiveBody(UnsafeRawBufferPointer(start: data, count: length)) ? length : 0
}

private let curlHeaderCallback: curl_write_callback = { data, size, count, userData in
    let transfer = Unmanaged<CurlTransfer>.fromOpaque(userData!).takeUnretainedValue()
    let length = size * count
    guard let data else { return length }
    transfer.receiveHeaderLine(UnsafeRawBufferPointer(start: data, count: length))
    return length
}

/// One exchange in flight. Created on any thread; after `submit` it is touched only by the
/// engine thread, which is why it is `@unchecked Sendable`.
final class CurlTransfer: @unchecked Sendable {
    let request: HTTPRequest
    let continuation: AsyncThrowingStream<HTTPResponsePart, any Error>.Continuation
    var easy: UnsafeMutableRawPointer?
    var headerList: UnsafeMutablePointer<curl_slist>?
    let errorBuffer = UnsafeMutablePointer<CChar>.allocate(capacity: Int(CURL_ERROR_SIZE) + 1)
    var maximumResponseBytes = Int.max

    private var status = 0
    private var headers: [HTTPHeader] = []
    /// The head arrived (the blank line after the header fields).
    private var headDelivered = false
    /// The head went to the reader of the stream.
    private var headYielded = false
    private var receivedHead: HTTPResponseHead?
    private var streaming = false
    private var buffered: [UInt8] = []
    private var receivedBytes = 0
    private var exceededLimit = false
    private var finished = false

    init(request: HTTPRequest, continuation: AsyncThrowingStream<HTTPResponsePart, any Error>.Continuation) {
        self.request = request
        self.continuation = continuation
        errorBuffer.initialize(repeating: 0, count: Int(CURL_ERROR_SIZE) + 1)
    }

    deinit { errorBuffer.deallocate() }

    /// Runs for every header line of every response, so it works on bytes and makes a String only
    /// of each field's trimmed name and value (in a Swift String, "\r\n" is one Character, too).
    func receiveHeaderLine(_ line: UnsafeRawBufferPointer) {
        var end = line.count
        while end > 0, line[end - 1] == 0x0A || line[end - 1] == 0x0D { end -= 1 }
        let bytes = UnsafeRawBufferPointer(rebasing: line[0..<end])
        if bytes.starts(with: "HTTP/".utf8) {
            // A new status line: after a 1xx, headers start over.
            status = Self.statusCode(ofStatusLine: bytes)
            headers = []
            return
        }
        if bytes.isEmpty {
            guard status >= 200, !headDelivered else { return }
            headDelivered = true
            let head = HTTPResponseHead(status: status, headers: headers)
            streaming = request.streamsEventStreams && head.isEventStream && (200..<300).contains(status)
            // A buffered body follows: the head goes with it (see complete), so that the reader
            // wakes up once per exchange, not twice.
            guard streaming else {
                receivedHead = head
                return
            }
            headYielded = true
            continuation.yield(.head(head))
            return
        }
        guard let colon = bytes.firstIndex(of: UInt8(ascii: ":")) else { return }
        headers.append(HTTPHeader(Self.trimmedText(bytes[..<colon]), Self.trimmedText(bytes[(colon + 1)...])))
    }

    /// The code of a status line such as `HTTP/1.1 200 OK`: its second space-separated word, or 0.
    static func statusCode(ofStatusLine line: UnsafeRawBufferPointer) -> Int {
        guard var index = line.firstIndex(of: 0x20) else { return 0 }
        while index < line.count, line[index] == 0x20 { index += 1 }
        var code = 0
        var digits = 0
        while index < line.count, line[index] != 0x20 {
            let byte = line[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9"), digits < 9 else { return 0 }
            code = code * 10 + Int(byte - UInt8(ascii: "0"))
            digits += 1
            index += 1
        }
        return digits > 0 ? code : 0
    }

    /// The bytes as text, without the spaces and tabs around them.
    static func trimmedText(_ bytes: Slice<UnsafeRawBufferPointer>) -> String {
        var start = bytes.startIndex
        var end = bytes.endIndex
        while start < end, bytes[start] == 0x20 || bytes[start] == 0x09 { start += 1 }
        while end > start, bytes[end - 1] == 0x20 || bytes[end - 1] == 0x09 { end -= 1 }
        return String(decoding: UnsafeRawBufferPointer(rebasing: bytes[start..<end]), as: UTF8.self)
    }

    /// Returns false to abort the transfer.
    func receiveBody(_ bytes: UnsafeRawBufferPointer) -> Bool {
        receivedBytes += bytes.count
        if receivedBytes > maximumResponseBytes {
            exceededLimit = true
            return false
        }
        if streaming {
            continuation.yield(.body([UInt8](bytes)))
        } else {
            buffered.append(contentsOf: bytes)
        }
        return true
    }

    func complete(result: CURLcode) {
        guard !finished else { return }
        if result == CURLE_OK {
            if !headYielded {
                headYielded = true
                headDelivered = true
                continuation.yield(.head(receivedHead ?? HTTPResponseHead(status: status, headers: headers)))
            }
            if !buffered.isEmpty {
                continuation.yield(.body(buffered))
                buffered = []
            }
            finished = true
            continuation.finish()
            return
        }
        finish(throwing: error(for: result))
    }

    func finish(throwing error: any Error) {
        guard !finished else { return }
        finished = true
        buffered = []
        continuation.finish(throwing: error)
    }

    private func error(for result: CURLcode) -> HTTPClientError {
        var sentBytes: Int = 0
        if let easy { curlshim_easy_getinfo_long(easy, CURLINFO_REQUEST_SIZE, &sentBytes) }
        let sent = sentBytes > 0 || headDelivered
        let detail = errorBuffer.pointee != 0 ? String(cString: errorBuffer) : String(cString: curl_easy_strerror(result))
        let code: HTTPClientError.Code
        switch result {
        case CURLE_COULDNT_CONNECT: code = .connectionRefused
        case CURLE_COULDNT_RESOLVE_HOST, CURLE_COULDNT_RESOLVE_PROXY: code = .hostNotFound
        case CURLE_OPERATION_TIMEDOUT:
            // A reused connection reports a connect time of 0, so bytes sent also prove it was up.
            var connectTime: Int = 0
            if let easy { curlshim_easy_getinfo_long(easy, CURLINFO_CONNECT_TIME_T, &connectTime) }
            code = (connectTime == 0 && sentBytes == 0 && !headDelivered) ? .connectTimedOut : .timedOut
        case CURLE_SSL_CONNECT_ERROR, CURLE_PEER_FAILED_VERIFICATION, CURLE_SSL_CERTPROBLEM, CURLE_SSL_CIPHER,
            CURLE_SSL_CACERT_BADFILE, CURLE_SSL_ISSUER_ERROR, CURLE_SSL_PINNEDPUBKEYNOTMATCH:
            code = .tlsFailure
        case CURLE_WRITE_ERROR where exceededLimit: code = .responseTooLarge
        case CURLE_RECV_ERROR, CURLE_SEND_ERROR, CURLE_GOT_NOTHING, CURLE_PARTIAL_FILE, CURLE_HTTP2, CURLE_HTTP2_STREAM:
            code = .connectionLost
        case CURLE_URL_MALFORMAT, CURLE_UNSUPPORTED_PROTOCOL: code = .invalidURL
        default: code = .transport
        }
        return HTTPClientError(code: code, detail: detail, requestWasSent: sent && code != .connectionRefused)
    }
}
