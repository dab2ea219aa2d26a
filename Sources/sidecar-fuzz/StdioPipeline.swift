import AgentWire
import Dispatch
import Logging
@_spi(Fuzzing) import SidecarCore

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sidecar's stdin path in one process: bytes → `LineFramer` → `MCPStdioServer` (parsing,
/// classification, dispatch, replies) → the stdout writer, over a `MemoryUpstream`. One fresh
/// server per input, so an input's outcome depends on nothing but its bytes.
struct StdioPipeline {
    /// Lines longer than this are oversized; small, so that a fuzzer reaches the limit.
    static let maximumLineBytes = 2048
    /// How long the calls of one input may take before it counts as a hang (the upstream answers at once).
    static let drainLimitNanoseconds: UInt64 = 10_000_000_000

    /// What one input ran with, chosen from its length so that every mode is reached (see `configuration(for:)`).
    struct Configuration: CustomStringConvertible {
        var upstream: MemoryUpstream.Mode
        var readOnly: Bool
        var description: String { "upstream \(upstream), read-only \(readOnly)" }
    }

    /// Input length modulo 4: legacy, modern + read-only, unreachable, legacy + read-only.
    static func configuration(for input: [UInt8]) -> Configuration {
        switch input.count % 4 {
        case 0: Configuration(upstream: .legacy, readOnly: false)
        case 1: Configuration(upstream: .modern, readOnly: true)
        case 2: Configuration(upstream: .unreachable, readOnly: false)
        default: Configuration(upstream: .legacy, readOnly: true)
        }
    }

    struct Outcome {
        let configuration: Configuration
        let output: [UInt8]
        /// Set when the calls did not finish in time.
        let hang: String?
    }

    let output: OutputFile
    let logger: Logger

    init() {
        output = OutputFile()
        // Every log line is formatted (hostile strings go through interpolation) and dropped.
        logger = Logger(label: "sidecar-fuzz") { _ in DiscardingLogHandler() }
    }

    /// Runs one input to completion and returns everything the server wrote.
    func run(_ input: [UInt8]) -> Outcome {
        let configuration = Self.configuration(for: input)
        var options = ServeOptions()
        options.maximumMessageBytes = Self.maximumLineBytes
        options.readOnly = configuration.readOnly
        options.excludedTools = ["hidden"]
        options.shutdownGrace = .milliseconds(200)
        options.initializeWaitForUpstream = .milliseconds(200)
        output.reset()
        let server = MCPStdioServer(
            options: options, upstream: MemoryUpstream(mode: configuration.upstream), logger: logger, input: -1,
            output: output.descriptor)

        // Feed it in uneven chunks, so that lines and CRLF pairs straddle reads as they do on a pipe.
        var framer = LineFramer(maximumLineBytes: Self.maximumLineBytes)
        let chunkSizes = [1, 7, 64, 3, 4096, 2, 513]
        var offset = 0
        var round = input.count % chunkSizes.count
        input.withUnsafeBytes { bytes in
            while offset < bytes.count {
                let size = min(chunkSizes[round % chunkSizes.count], bytes.count - offset)
                framer.append(UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + size)])) { server.feed($0) }
                offset += size
                round += 1
            }
        }
        framer.finish { server.feed($0) }

        var hang: String?
        let deadline = monotonicNanoseconds() + Self.drainLimitNanoseconds
        while server.callsInFlight > 0 {
            if monotonicNanoseconds() > deadline {
                hang = "\(server.callsInFlight) call(s) still running after \(Self.drainLimitNanoseconds / 1_000_000) ms"
                break
            }
            usleep(50)
        }
        let stopped = DispatchSemaphore(value: 0)
        Task {
            await server.stop(reason: "fuzz input done")
            stopped.signal()
        }
        if stopped.wait(timeout: .now() + .seconds(10)) == .timedOut {
            hang = (hang.map { $0 + "; " } ?? "") + "shutdown did not finish within 10 s"
        } else if !server.waitForOutput(timeoutNanoseconds: 10_000_000_000) {
            // Shutdown gives the writer one second; on a starved machine the rest comes later.
            hang = (hang.map { $0 + "; " } ?? "") + "stdout not written within 10 s of shutdown"
        }
        return Outcome(configuration: configuration, output: output.contents(), hang: hang)
    }
}

/// An unlinked file the server's stdout writer writes to, emptied between inputs. In /dev/shm
/// (memory) where there is one: a file on disk can stall a write for seconds while the kernel
/// throttles dirty pages, which looked like a hang.
final class OutputFile: @unchecked Sendable {
    let descriptor: Int32

    init() {
        let directory = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp"
        var template = Array("\(directory)/sidecar-fuzz-XXXXXX".utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        precondition(descriptor >= 0, "sidecar-fuzz: cannot create a temporary file in \(directory) (errno \(errno))")
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        self.descriptor = descriptor
    }

    func reset() {
        _ = ftruncate(descriptor, 0)
        _ = lseek(descriptor, 0, SEEK_SET)
    }

    func contents() -> [UInt8] {
        let size = Int(lseek(descriptor, 0, SEEK_END))
        guard size > 0 else { return [] }
        var bytes = [UInt8](repeating: 0, count: size)
        let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, size, 0) }
        return Array(bytes.prefix(max(0, count)))
    }

    deinit { close(descriptor) }
}

/// Formats each message (so hostile text runs through the logging path) and drops it.
struct DiscardingLogHandler: LogHandler {
    var metadata: Logger.Metadata = [:]
    var logLevel: Logger.Level = .trace

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        _ = event.message.description.utf8.count
    }
}

func monotonicNanoseconds() -> UInt64 {
    var now = timespec()
    clock_gettime(CLOCK_MONOTONIC, &now)
    return UInt64(now.tv_sec) * 1_000_000_000 + UInt64(now.tv_nsec)
}
