// sidecar-fuzz: drives the sidecar's stdin path in-process with hostile input (a corpus and a
// seeded generator) and checks every reply against an oracle; `lines` writes hostile input for
// the end-to-end tests. A development tool, not a product.
//
// May depend on AgentWire, SidecarCore, TestSupport and swift-log.

import AgentWire
import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs one input through the pipeline and the oracle; returns a report of what broke, or nil.
func judge(_ input: [UInt8], pipeline: StdioPipeline) -> String? {
    let outcome = pipeline.run(input)
    var problems = ReplyOracle.check(input: input, output: outcome.output, maximumLineBytes: StdioPipeline.maximumLineBytes).map(\.description)
    if let hang = outcome.hang { problems.insert("hang: \(hang)", at: 0) }
    guard !problems.isEmpty else { return nil }
    let output = String(decoding: outcome.output.prefix(4000), as: UTF8.self)
    return "sidecar-fuzz: invariant broken (\(outcome.configuration)):\n  " + problems.joined(separator: "\n  ") + "\n--- stdout\n\(output)"
}

#if LIBFUZZER

/// One pipeline for the whole fuzzing process (its output file is reused).
let fuzzPipeline = StdioPipeline()

/// libFuzzer's driver (compiler-rt's `libclang_rt.fuzzer`, linked by `-sanitize=fuzzer`).
@_silgen_name("LLVMFuzzerRunDriver")
func runLibFuzzer(
    _ argc: UnsafeMutablePointer<Int32>, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> Int32
) -> Int32

/// The libFuzzer build's `main`. SwiftPM links every executable with its own entry symbol, so
/// instead of libFuzzer's `main` this one hands the command line to `LLVMFuzzerRunDriver`.
@main
enum SidecarFuzzDriver {
    static func main() {
        var argc = CommandLine.argc
        var argv = CommandLine.unsafeArgv
        exit(runLibFuzzer(&argc, &argv, fuzzOneInput))
    }
}

/// libFuzzer's entry: built with `-sanitize=fuzzer` (see Fuzz/fuzz); a broken invariant aborts,
/// which libFuzzer records as a crash with the input that caused it.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzOneInput(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let input = size == 0 ? [] : Array(UnsafeBufferPointer(start: data, count: size))
    if let report = judge(input, pipeline: fuzzPipeline) {
        writeToStandardError(report + "\n")
        abort()
    }
    return 0
}

#else

/// `sidecar-fuzz`: the stdin fuzz harness without libFuzzer (a plain debug build): replays a corpus,
/// runs the seeded generator, or writes hostile input for other tests. `Fuzz/fuzz` drives it.
@main
enum SidecarFuzz {
    static let usage = """
        usage: sidecar-fuzz replay PATH...                 run corpus files (or directories of them) through the harness
               sidecar-fuzz generate [--seed N] [--count N] [--seconds S] [--artifacts DIR]
                                                           run seeded hostile sessions through the harness
               sidecar-fuzz write-seeds DIR [--seed N] [--count N]
                                                           write seeded hostile sessions as corpus files
               sidecar-fuzz lines [--seed N] [--count N] [--giant BYTES]
                                                           print hostile lines to stdout (for the process-level test)
               sidecar-fuzz check --input FILE --output FILE [--max-line BYTES]
                                                           judge what a real sidecar wrote for that input
        """

    static func main() {
        var arguments = Array(CommandLine.arguments.dropFirst())
        guard !arguments.isEmpty else { fail(usage) }
        let command = arguments.removeFirst()
        var options: [String: String] = [:]
        var paths: [String] = []
        while !arguments.isEmpty {
            let argument = arguments.removeFirst()
            if argument.hasPrefix("--") {
                guard !arguments.isEmpty else { fail("sidecar-fuzz: \(argument) needs a value\n\(usage)") }
                options[String(argument.dropFirst(2))] = arguments.removeFirst()
            } else {
                paths.append(argument)
            }
        }
        func number(_ name: String, _ fallback: UInt64) -> UInt64 {
            guard let text = options[name] else { return fallback }
            guard let value = UInt64(text) else { fail("sidecar-fuzz: --\(name) must be a whole number, not '\(text)'") }
            return value
        }
        switch command {
        case "replay":
            guard !paths.isEmpty else { fail("sidecar-fuzz replay: name at least one corpus file or directory") }
            replay(paths)
        case "generate":
            generate(
                seed: number("seed", 1), count: number("count", .max), seconds: number("seconds", 0),
                artifacts: options["artifacts"] ?? "fuzz-failures")
        case "write-seeds":
            guard paths.count == 1 else { fail("sidecar-fuzz write-seeds: name one directory") }
            writeSeeds(into: paths[0], seed: number("seed", 1), count: Int(number("count", 200)))
        case "lines":
            printLines(seed: number("seed", 1), count: Int(number("count", 10_000)), giant: Int(number("giant", 5000)))
        case "check":
            guard let inputPath = options["input"], let outputPath = options["output"] else {
                fail("sidecar-fuzz check: name the --input and the --output file")
            }
            check(input: inputPath, output: outputPath, maximumLineBytes: Int(number("max-line", 64 * 1024 * 1024)))
        default:
            fail(usage)
        }
    }

    /// Applies the oracle to a real process's stdin and stdout, saved to files.
    static func check(input inputPath: String, output outputPath: String, maximumLineBytes: Int) {
        guard let input = readFile(inputPath) else { fail("sidecar-fuzz check: cannot read \(inputPath)") }
        guard let output = readFile(outputPath) else { fail("sidecar-fuzz check: cannot read \(outputPath)") }
        let violations = ReplyOracle.check(input: input, output: output, maximumLineBytes: maximumLineBytes)
        for violation in violations { print(violation.description) }
        print("checked \(input.count) bytes in, \(output.count) bytes out: \(violations.count) broken invariant(s)")
        exit(violations.isEmpty ? 0 : 1)
    }

    static func replay(_ paths: [String]) {
        let pipeline = StdioPipeline()
        var files: [String] = []
        for path in paths { files += corpusFiles(at: path) }
        guard !files.isEmpty else { fail("sidecar-fuzz replay: no files under \(paths.joined(separator: " "))") }
        let started = monotonicNanoseconds()
        var broken = 0
        for file in files {
            guard let input = readFile(file) else { fail("sidecar-fuzz replay: cannot read \(file)") }
            if let report = judge(input, pipeline: pipeline) {
                broken += 1
                writeToStandardError("\(file):\n\(report)\n")
            }
        }
        let seconds = Double(monotonicNanoseconds() - started) / 1e9
        print(
            "replayed \(files.count) inputs in \(formatted(seconds)) s (\(Int(Double(files.count) / max(seconds, 1e-9))) per second); \(broken) broke an invariant"
        )
        exit(broken == 0 ? 0 : 1)
    }

    static func generate(seed: UInt64, count: UInt64, seconds: UInt64, artifacts: String) {
        let pipeline = StdioPipeline()
        let started = monotonicNanoseconds()
        let stopAt = seconds == 0 ? UInt64.max : started + seconds * 1_000_000_000
        var runs: UInt64 = 0
        var lines = 0
        var broken = 0
        while runs < count, monotonicNanoseconds() < stopAt {
            // Each session has its own seed, so a failure is reproduced by that seed alone.
            let sessionSeed = seed &* 1_000_003 &+ runs
            var inputs = HostileInputs(seed: sessionSeed)
            let lineCount = Int(sessionSeed % 12) + 1
            let input = inputs.session(lines: lineCount)
            lines += lineCount
            runs += 1
            if let report = judge(input, pipeline: pipeline) {
                broken += 1
                mkdir(artifacts, 0o755)
                let file = "\(artifacts)/session-\(sessionSeed)"
                writeFile(file, input)
                writeToStandardError("session seed \(sessionSeed) (saved as \(file)):\n\(report)\n")
                if broken >= 5 { break }
            }
        }
        let elapsed = Double(monotonicNanoseconds() - started) / 1e9
        print(
            "generated \(runs) sessions (\(lines) lines) from seed \(seed) in \(formatted(elapsed)) s (\(Int(Double(runs) / max(elapsed, 1e-9))) per second); \(broken) broke an invariant"
        )
        exit(broken == 0 ? 0 : 1)
    }

    static func writeSeeds(into directory: String, seed: UInt64, count: Int) {
        mkdir(directory, 0o755)
        for index in 0..<count {
            let sessionSeed = seed &* 1_000_003 &+ UInt64(index)
            var inputs = HostileInputs(seed: sessionSeed)
            writeFile("\(directory)/generated-\(sessionSeed)", inputs.session(lines: Int(sessionSeed % 12) + 1))
        }
        print("wrote \(count) sessions to \(directory)")
    }

    static func printLines(seed: UInt64, count: Int, giant: Int) {
        var inputs = HostileInputs(seed: seed, giantLineBytes: giant)
        var buffer: [UInt8] = []
        for _ in 0..<count {
            buffer += inputs.line()
            buffer.append(0x0A)
            if buffer.count > 1 << 16 {
                writeAll(STDOUT_FILENO, buffer)
                buffer.removeAll(keepingCapacity: true)
            }
        }
        writeAll(STDOUT_FILENO, buffer)
    }

    static func corpusFiles(at path: String) -> [String] {
        guard let directory = opendir(path) else { return [path] }
        defer { closedir(directory) }
        var files: [String] = []
        while let entry = readdir(directory) {
            let name = withUnsafeBytes(of: entry.pointee.d_name) { String(decoding: $0.prefix { $0 != 0 }, as: UTF8.self) }
            if name.hasPrefix(".") { continue }
            files += corpusFiles(at: "\(path)/\(name)")
        }
        return files.sorted()
    }

    static func formatted(_ seconds: Double) -> String { String(Double(Int(seconds * 10)) / 10) }

    static func fail(_ message: String) -> Never {
        writeToStandardError(message + "\n")
        exit(2)
    }
}

#endif

func readFile(_ path: String) -> [UInt8]? { try? FileSystem.readFile(path) }

func writeFile(_ path: String, _ bytes: [UInt8]) {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    guard descriptor >= 0 else { return }
    writeAll(descriptor, bytes)
    close(descriptor)
}

func writeAll(_ descriptor: Int32, _ bytes: [UInt8]) { try? Descriptor.writeAll(descriptor, bytes) }

func writeToStandardError(_ text: String) { Descriptor.writeStandardError(text) }
