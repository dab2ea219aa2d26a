import Synchronization
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// A real child process started with `posix_spawn`, for the tests that drive the built binaries.
///
/// Why not Foundation's `Process`: in full parallel test runs on Linux it crashed the test
/// process (signal 11 inside `Process.run()`) and left children that had exited reported as
/// running. This is the small part the tests need, with nothing shared between children:
/// every pipe is close-on-exec (so one child never holds another's pipe open), every other
/// descriptor is closed in the child, and the exit is collected with `waitpid(pid, WNOHANG)`
/// for this pid only, never by a signal handler.
public final class SpawnedProcess: @unchecked Sendable {
    /// Where a standard stream of the child goes.
    public enum Stream: Sendable {
        /// A pipe to this process (`stdinDescriptor`, `stdoutDescriptor`, `stderrDescriptor`).
        case pipe
        /// `/dev/null`.
        case null
        /// A file, truncated or created (0600) for output, read for input.
        case file(String)
        /// stderr only: the same pipe or file as stdout.
        case stdout
    }

    public struct Failure: Error, CustomStringConvertible, Sendable {
        public let description: String
        public init(_ description: String) { self.description = description }
    }

    /// A write to a child that has exited fails with EPIPE instead of ending the test process.
    private static let brokenPipesIgnored: Void = { _ = Glibc.signal(SIGPIPE, SIG_IGN) }()

    public let pid: pid_t
    public let executable: String
    /// The parent's ends of the pipes asked for (`-1` when that stream is not a pipe).
    public let stdinDescriptor: Int32
    public let stdoutDescriptor: Int32
    public let stderrDescriptor: Int32

    /// The raw `waitpid` status once the child has been collected.
    private let collected = Mutex<Int32?>(nil)
    private let stdinOpen = Mutex(true)

    /// Starts `executable` with `arguments` and exactly `environment`.
    public init(
        executable: String, arguments: [String], environment: [String: String], stdin: Stream = .pipe,
        stdout: Stream = .pipe, stderr: Stream = .pipe
    ) throws(Failure) {
        _ = Self.brokenPipesIgnored
        self.executable = executable
        // Pipes are made close-on-exec and the child spawned under the process-wide spawn lock,
        // so that no other spawn of this process (ours or SidecarCore's) inherits their ends.
        ChildProcess.spawnLock.lock()
        defer { ChildProcess.spawnLock.unlock() }
        var opened: [Int32] = []  // every descriptor this init made; the child's ends are closed here after spawning
        func closeAll() { for descriptor in opened { close(descriptor) } }
        func makePipe() throws(Failure) -> (read: Int32, write: Int32) {
            let ends: (read: Int32, write: Int32)
            do { ends = try ChildProcess.closeOnExecPipe() } catch { throw Failure("cannot make a pipe: \(error)") }
            opened += [ends.read, ends.write]
            return ends
        }
        func openFile(_ path: String, forOutput: Bool) throws(Failure) -> Int32 {
            let flags = forOutput ? (O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW) : (O_RDONLY | O_CLOEXEC)
            let descriptor = open(path, flags, 0o600)
            guard descriptor >= 0 else { throw Failure("cannot open \(path): \(String(cString: strerror(errno)))") }
            opened.append(descriptor)
            return descriptor
        }

        var childEnds: [Int32] = [-1, -1, -1]
        var parentEnds: [Int32] = [-1, -1, -1]
        do {
            switch stdin {
            case .pipe:
                let ends = try makePipe()
                (childEnds[0], parentEnds[0]) = (ends.read, ends.write)
            case .null: childEnds[0] = try openFile("/dev/null", forOutput: false)
            case .file(let path): childEnds[0] = try openFile(path, forOutput: false)
            case .stdout: throw Failure("stdin cannot be stdout")
            }
            for (index, stream) in [(1, stdout), (2, stderr)] {
                switch stream {
                case .pipe:
                    let ends = try makePipe()
                    (childEnds[index], parentEnds[index]) = (ends.write, ends.read)
                case .null: childEnds[index] = try openFile("/dev/null", forOutput: true)
                case .file(let path): childEnds[index] = try openFile(path, forOutput: true)
                case .stdout:
                    guard index == 2 else { throw Failure("stdout cannot be stdout") }
                    childEnds[2] = childEnds[1]
                }
            }
        } catch let failure as Failure {
            closeAll()
            throw failure
        } catch {
            closeAll()
            throw Failure("\(error)")
        }

        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(executable, arguments: arguments, environment: environment, stdio: childEnds)
        } catch {
            closeAll()
            throw Failure("cannot start \(executable): \(error)")
        }
        // The parent keeps only its own ends.
        for descriptor in opened where !parentEnds.contains(descriptor) { close(descriptor) }
        self.pid = pid
        (stdinDescriptor, stdoutDescriptor, stderrDescriptor) = (parentEnds[0], parentEnds[1], parentEnds[2])
        if stdinDescriptor < 0 { stdinOpen.withLock { $0 = false } }
    }

    /// The exit status once the child has ended (its exit code, or 128 + the signal that ended
    /// it, as a shell reports it); nil while it runs. Collects the child the first time.
    public var exitStatus: Int32? {
        rawStatus().map(ChildProcess.exitCode(ofStatus:))
    }

    /// The signal that ended the child, if a signal did.
    public var terminatingSignal: Int32? {
        guard let status = rawStatus() else { return nil }
        let signal = status & 0x7F
        return signal == 0 ? nil : signal
    }

    public var isRunning: Bool { rawStatus() == nil }

    private func rawStatus() -> Int32? {
        collected.withLock { collected in
            if let collected { return collected }
            collected = ChildProcess.statusIfEnded(pid)
            return collected
        }
    }

    /// Sends `signal` unless the child has been collected (its pid may then belong to another process).
    public func signal(_ signal: Int32) {
        collected.withLock { collected in
            if collected == nil { _ = kill(pid, signal) }
        }
    }

    /// Waits up to `timeout` for the child to end and returns its exit status; throws if it is still running.
    public func waitForExit(timeout: Duration) async throws -> Int32 {
        let deadline = ContinuousClock.now + timeout
        while true {
            if let status = exitStatus { return status }
            if ContinuousClock.now >= deadline {
                throw Failure("\(programName) (pid \(pid)) still running after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// The blocking form of `waitForExit`, for synchronous helpers; nil if still running after `timeout`.
    public func waitForExitBlocking(timeout: Duration) -> Int32? {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if let status = exitStatus { return status }
            usleep(2_000)
        }
        return exitStatus
    }

    /// Writes all of `bytes` to the child's stdin; false once the child has stopped reading.
    @discardableResult
    public func writeToStdin(_ bytes: [UInt8]) -> Bool {
        guard stdinDescriptor >= 0, stdinOpen.withLock({ $0 }) else { return false }
        return (try? Descriptor.writeAll(stdinDescriptor, bytes)) != nil
    }

    /// Closes the child's stdin (it reads end of file).
    public func closeStdin() {
        stdinOpen.withLock { open in
            if open, stdinDescriptor >= 0 { close(stdinDescriptor) }
            open = false
        }
    }

    var programName: String { String(executable.split(separator: "/").last ?? Substring(executable)) }

    deinit {
        if exitStatus == nil {
            _ = kill(pid, SIGKILL)
            _ = waitForExitBlocking(timeout: .seconds(5))
        }
        if stdinOpen.withLock({ $0 }), stdinDescriptor >= 0 { close(stdinDescriptor) }
    }
}

/// Reads one descriptor to its end on a thread of its own (never a thread of Swift's
/// cooperative pool), keeping what it read, and closes it.
public final class OutputCollector: Sendable {
    private let state = Mutex<(bytes: [UInt8], finished: Bool)>(([], false))

    /// `onLine` is called for each complete line (without its newline), and once more for a
    /// last line without one.
    public init(descriptor: Int32, onLine: (@Sendable (String) -> Void)? = nil) {
        startDetachedThread(name: "output-collector") { [self] in
            var pending: [UInt8] = []
            var buffer = [UInt8](repeating: 0, count: 64 * 1024)
            while true {
                let count = buffer.withUnsafeMutableBytes { read(descriptor, $0.baseAddress, $0.count) }
                if count < 0, errno == EINTR { continue }
                if count <= 0 { break }
                state.withLock { $0.bytes.append(contentsOf: buffer[0..<count]) }
                guard let onLine else { continue }
                var start = 0
                for index in 0..<count where buffer[index] == 0x0A {
                    pending.append(contentsOf: buffer[start..<index])
                    onLine(String(decoding: pending, as: UTF8.self))
                    pending.removeAll(keepingCapacity: true)
                    start = index + 1
                }
                pending.append(contentsOf: buffer[start..<count])
            }
            if let onLine, !pending.isEmpty { onLine(String(decoding: pending, as: UTF8.self)) }
            close(descriptor)
            state.withLock { $0.finished = true }
        }
    }

    public var bytes: [UInt8] { state.withLock { $0.bytes } }
    public var text: String { String(decoding: bytes, as: UTF8.self) }
    /// Whether the descriptor reached its end (every writer closed it).
    public var finished: Bool { state.withLock { $0.finished } }
}
