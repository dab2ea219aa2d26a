import SystemSupport
import Testing

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A pipe whose read end a detached thread drains into memory until end of file.
final class DrainedPipe: @unchecked Sendable {
    let readEnd: Int32
    let writeEnd: Int32
    private let done = PthreadMutex<(bytes: [UInt8], finished: Bool)>(([], false))

    init() throws {
        var ends: [Int32] = [0, 0]
        guard pipe(&ends) == 0 else { throw DescriptorError(code: errno) }
        readEnd = ends[0]
        writeEnd = ends[1]
        startDetachedThread(name: "pipe-reader") { [self] in
            var chunk = [UInt8](repeating: 0, count: 4096)
            while true {
                let got = chunk.withUnsafeMutableBytes { read(readEnd, $0.baseAddress, $0.count) }
                if got < 0, errno == EINTR { continue }
                if got <= 0 { break }
                done.withLock { $0.bytes += chunk[0..<got] }
            }
            close(readEnd)
            done.withLock { $0.finished = true }
        }
    }

    /// Closes the write end and waits (bounded, asynchronously) for the reader to reach end of file.
    func finish() async throws -> [UInt8] {
        close(writeEnd)
        for _ in 0..<12_000 {
            if let bytes = done.withLock({ $0.finished ? $0.bytes : nil }) { return bytes }
            try await Task.sleep(for: .milliseconds(10))
        }
        throw DescriptorError(code: ETIMEDOUT)
    }
}

@Suite struct DescriptorTests {
    static func pattern(_ count: Int) -> [UInt8] { (0..<count).map { UInt8(truncatingIfNeeded: $0 &* 31 &+ $0 >> 8) } }

    @Test("writeAll puts every byte through a pipe far smaller than the data, in order")
    func writeAllThroughPipe() async throws {
        let pipe = try DrainedPipe()
        let data = Self.pattern(1 << 20)
        try Descriptor.writeAll(pipe.writeEnd, data)
        #expect(try await pipe.finish() == data)
    }

    @Test("writeAll waits for room on a non-blocking pipe instead of failing with EAGAIN")
    func writeAllNonBlocking() async throws {
        let pipe = try DrainedPipe()
        _ = fcntl(pipe.writeEnd, F_SETFL, fcntl(pipe.writeEnd, F_GETFL) | O_NONBLOCK)
        let data = Self.pattern(512 * 1024)
        try Descriptor.writeAll(pipe.writeEnd, data)
        #expect(try await pipe.finish() == data)
    }

    @Test("writeAll reports the errno of a descriptor it cannot write")
    func writeAllFailure() {
        #expect(throws: DescriptorError(code: EBADF)) { try Descriptor.writeAll(-1, [1, 2, 3]) }
    }

    @Test("readAll returns a file up to its bound and refuses one byte more")
    func readAllBounded() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/data"
        let data = Self.pattern(100_000)
        try AtomicFile.write(data, to: path, permissions: .ownerOnly)
        for (limit, accepted) in [(100_000, true), (Int.max, true), (99_999, false), (0, false)] {
            let descriptor = open(path, O_RDONLY | O_CLOEXEC)
            defer { close(descriptor) }
            if accepted {
                #expect(try Descriptor.readAll(descriptor, limit: limit) == data)
            } else {
                #expect(throws: DescriptorError(code: EFBIG)) { try Descriptor.readAll(descriptor, limit: limit) }
            }
        }
        #expect(try FileSystem.readFile(path, limit: 100_000) == data)
        #expect(throws: FileSystemError(code: EFBIG, operation: "read", path: path)) { try FileSystem.readFile(path, limit: 10) }
        #expect(try FileSystem.readFile(directory.path + "/missing") == nil)
        #expect(throws: FileSystemError(code: ENOENT, operation: "read", path: directory.path + "/missing")) {
            try FileSystem.readRequiredFile(directory.path + "/missing")
        }
    }

    @Test("readAll stops at the bound on an endless stream instead of reading it all")
    func readAllStopsOnEndlessInput() throws {
        let descriptor = open("/dev/zero", O_RDONLY | O_CLOEXEC)
        try #require(descriptor >= 0)
        defer { close(descriptor) }
        #expect(throws: DescriptorError(code: EFBIG)) { try Descriptor.readAll(descriptor, limit: 1_000_000) }
    }

    @Test("readExactly fills the buffer, and a file that ends early is EIO")
    func readExactly() throws {
        let directory = try TemporaryDirectory()
        let path = directory.path + "/short"
        try AtomicFile.write([1, 2, 3, 4], to: path, permissions: .ownerOnly)
        var buffer = [UInt8](repeating: 0, count: 4)
        var descriptor = open(path, O_RDONLY | O_CLOEXEC)
        try buffer.withUnsafeMutableBytes { raw in
            try Descriptor.readExactly(descriptor, into: raw)
        }
        close(descriptor)
        #expect(buffer == [1, 2, 3, 4])
        descriptor = open(path, O_RDONLY | O_CLOEXEC)
        defer { close(descriptor) }
        var longer = [UInt8](repeating: 0, count: 5)
        #expect(throws: DescriptorError(code: EIO)) {
            try longer.withUnsafeMutableBytes { raw in
                try Descriptor.readExactly(descriptor, into: raw)
            }
        }
    }

    @Test("the pthread lock serialises increments from several threads")
    func pthreadMutex() async throws {
        let counter = PthreadMutex(0)
        let finished = PthreadMutex(0)
        for index in 0..<4 {
            startDetachedThread(name: "counter-\(index)") {
                for _ in 0..<10_000 { counter.withLock { $0 += 1 } }
                finished.withLock { $0 += 1 }
            }
        }
        for _ in 0..<12_000 where finished.withLock({ $0 }) < 4 { try await Task.sleep(for: .milliseconds(10)) }
        #expect(counter.withLock { $0 } == 40_000)
    }

    @Test("text helpers: one line without control characters, bounded; spaces and tabs trimmed")
    func textHelpers() {
        #expect("a\r\nb\nc\rd\te\u{1B}[31m\u{7F}".flattenedToOneLine() == "a  b c d e [31m ")
        #expect(String(repeating: "x", count: 250).flattenedToOneLine(limit: 200) == String(repeating: "x", count: 200) + "…")
        #expect("short".flattenedToOneLine(limit: 200) == "short")
        #expect(String(repeating: "y", count: 501).flattenedToOneLine(limit: 500, marker: "") == String(repeating: "y", count: 500))
        #expect(" \t Bearer x \t".trimmingSpaces() == "Bearer x")
        #expect(" \n x".trimmingSpaces() == "\n x")
        #expect("".trimmingSpaces() == "")
    }
}

@Suite struct ChildProcessTests {
    @Test("spawn pipes are close-on-exec at both ends")
    func closeOnExecPipe() throws {
        ChildProcess.spawnLock.lock()
        let ends = try ChildProcess.closeOnExecPipe()
        ChildProcess.spawnLock.unlock()
        defer {
            close(ends.read)
            close(ends.write)
        }
        #expect(fcntl(ends.read, F_GETFD) & FD_CLOEXEC != 0)
        #expect(fcntl(ends.write, F_GETFD) & FD_CLOEXEC != 0)
    }

    @Test("a raw wait status reads as the exit code, or 128 + the signal, as shells report it")
    func exitCodes() {
        #expect(ChildProcess.exitCode(ofStatus: 0) == 0)
        #expect(ChildProcess.exitCode(ofStatus: 3 << 8) == 3)
        #expect(ChildProcess.exitCode(ofStatus: SIGKILL) == 128 + SIGKILL)
        #expect(ChildProcess.statusIfEnded(-12345) == nil)
    }
}
