import AgentWire
import Dispatch
import Logging
@_spi(Fuzzing) import SidecarCore
import SystemSupport
import TestSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// The sidecar's stdin path in one process: bytes → `LineFramer` → `MCPStdioServer` (parsing,
/// classification, dispatch, replies) → the stdout writer, over a `MemoryUpstream`. One fresh
/// server per input, so an input's outcome depends on nothing but its bytes. `MemoryUpstream`,
/// `OutputFile` and `DiscardingLogHandler` come from `TestSupport`, shared with the unit tests.
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
