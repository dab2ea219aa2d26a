import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Raw TCP connections to a gateway on 127.0.0.1, each from a chosen loopback source address
/// (Linux routes all of 127.0.0.0/8 to the loopback interface, so any 127.x.y.z can be bound
/// without configuration). Used to play many clients, or a client that stalls halfway through a
/// request, which URLSession cannot do. Non-blocking sockets, one thread, every wait bounded.
final class LoopbackConnections: @unchecked Sendable {
    private(set) var descriptors: [Int32] = []
    /// Connections the server has closed (EOF or reset), by index.
    private(set) var closed: Set<Int> = []
    /// Everything each connection received so far.
    private(set) var received: [[UInt8]] = []

    /// `count` source addresses 127.0.X.Y, starting at 127.0.`firstBlock`.1, 250 per block.
    static func sources(_ count: Int, firstBlock: Int) -> [String] {
        (0..<count).map { "127.0.\(firstBlock + $0 / 250).\(1 + $0 % 250)" }
    }

    /// Opens one connection per source address to `port` and sends `payload` on each (not waiting for answers).
    convenience init(port: Int, sources: [String], payload: [UInt8], timeoutSeconds: Double = 30) throws {
        try self.init(port: port, sources: sources, payloads: sources.map { _ in payload }, timeoutSeconds: timeoutSeconds)
    }

    /// Opens one connection per source address and sends the matching payload on each.
    init(port: Int, sources: [String], payloads: [[UInt8]], timeoutSeconds: Double = 30) throws {
        raiseDescriptorLimit(to: sources.count + 512)
        let deadline = Date().addingTimeInterval(timeoutSeconds)
        for (source, payload) in zip(sources, payloads) {
            let descriptor = try Self.connect(port: port, source: source, deadline: deadline)
            descriptors.append(descriptor)
            received.append([])
            if !payload.isEmpty { try Self.send(descriptor, payload, deadline: deadline) }
        }
    }

    /// A complete request that asks the server to close the connection after answering.
    static func request(method: String, path: String, json: String? = nil) -> [UInt8] {
        var request = "\(method) \(path) HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        if let json { request += "Content-Type: application/json\r\nContent-Length: \(json.utf8.count)\r\n" }
        return Array((request + "\r\n" + (json ?? "")).utf8)
    }

    /// The body of each answer, after the header.
    func body(_ index: Int) -> String {
        let text = String(decoding: received[index], as: UTF8.self)
        return text.range(of: "\r\n\r\n").map { String(text[$0.upperBound...]) } ?? ""
    }

    deinit { closeAll() }

    func closeAll() {
        for descriptor in descriptors where descriptor >= 0 { close(descriptor) }
        descriptors = descriptors.map { _ in -1 }
    }

    /// Sends more bytes on connection `index`; `false` if it is closed.
    @discardableResult
    func send(_ index: Int, _ bytes: [UInt8]) -> Bool {
        (try? Self.send(descriptors[index], bytes, deadline: Date().addingTimeInterval(5))) != nil
    }

    /// Reads what has arrived on every connection without waiting, and notes which are closed.
    func poll() {
        var buffer = [UInt8](repeating: 0, count: 4096)
        for (index, descriptor) in descriptors.enumerated() where descriptor >= 0 && !closed.contains(index) {
            while true {
                let got = recv(descriptor, &buffer, buffer.count, Int32(MSG_DONTWAIT))
                if got > 0 {
                    received[index].append(contentsOf: buffer[0..<got])
                    continue
                }
                if got == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) { closed.insert(index) }
                break
            }
        }
    }

    /// Polls until `done` holds or `seconds` pass; returns whether `done` held.
    func wait(seconds: Double, until done: (LoopbackConnections) -> Bool) async -> Bool {
        let deadline = Date().addingTimeInterval(seconds)
        while true {
            poll()
            if done(self) { return true }
            if Date() > deadline { return false }
            try? await Task.sleep(for: .milliseconds(100))
        }
    }

    var openCount: Int { descriptors.count - closed.count }

    /// The HTTP status each connection got, if it got one.
    func status(_ index: Int) -> Int? { Self.status(of: received[index]) }

    static func status(of bytes: [UInt8]) -> Int? {
        let text = String(decoding: bytes.prefix(32), as: UTF8.self)
        guard text.hasPrefix("HTTP/1.1 "), text.count >= 12 else { return nil }
        return Int(text.dropFirst(9).prefix(3))
    }

    // MARK: Plumbing

    static func connect(port: Int, source: String, deadline: Date) throws -> Int32 {
        let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        guard descriptor >= 0 else { throw TestFailure("socket: errno \(errno)") }
        var local = sockaddr_in()
        local.sin_family = sa_family_t(AF_INET)
        inet_pton(AF_INET, source, &local.sin_addr)
        var remote = sockaddr_in()
        remote.sin_family = sa_family_t(AF_INET)
        remote.sin_port = in_port_t(UInt16(port).bigEndian)
        inet_pton(AF_INET, "127.0.0.1", &remote.sin_addr)
        let bound = withUnsafePointer(to: &local) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard bound == 0 else {
            close(descriptor)
            throw TestFailure("bind \(source): errno \(errno)")
        }
        let started = withUnsafePointer(to: &remote) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        if started != 0 && errno != EINPROGRESS {
            close(descriptor)
            throw TestFailure("connect from \(source): errno \(errno)")
        }
        var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
        while true {
            let left = Int32(max(0, deadline.timeIntervalSinceNow) * 1000)
            let ready = Glibc.poll(&entry, 1, left)
            if ready > 0 { break }
            if ready == 0 || errno != EINTR {
                close(descriptor)
                throw TestFailure("connect from \(source) timed out")
            }
        }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        getsockopt(descriptor, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else {
            close(descriptor)
            throw TestFailure("connect from \(source): errno \(error)")
        }
        return descriptor
    }

    static func send(_ descriptor: Int32, _ bytes: [UInt8], deadline: Date) throws {
        var offset = 0
        while offset < bytes.count {
            let sent = bytes[offset...].withUnsafeBytes { Glibc.send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
            if sent > 0 {
                offset += sent
                continue
            }
            guard errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR, Date() < deadline else { throw TestFailure("send: errno \(errno)") }
            var entry = pollfd(fd: descriptor, events: Int16(POLLOUT), revents: 0)
            _ = Glibc.poll(&entry, 1, 100)
        }
    }
}

/// One complete request from a chosen source address; reads the answer until the server closes
/// the connection (the request says `Connection: close`) or `seconds` pass.
func loopbackRequest(
    port: Int, source: String, method: String = "GET", path: String, json: String? = nil, seconds: Double = 30
) async throws -> (status: Int?, body: String) {
    let request = LoopbackConnections.request(method: method, path: path, json: json)
    let connection = try LoopbackConnections(port: port, sources: [source], payload: request, timeoutSeconds: seconds)
    _ = await connection.wait(seconds: seconds) { $0.closed.contains(0) }
    return (connection.status(0), connection.body(0))
}

/// Raises this process's soft descriptor limit to `count` if it is lower (never past the hard limit).
func raiseDescriptorLimit(to count: Int) {
    var limit = rlimit()
    let resource = __rlimit_resource_t(RLIMIT_NOFILE.rawValue)
    guard getrlimit(resource, &limit) == 0, limit.rlim_cur < rlim_t(count) else { return }
    limit.rlim_cur = min(rlim_t(count), limit.rlim_max)
    setrlimit(resource, &limit)
}
