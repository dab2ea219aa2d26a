#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// What one finished command printed.
public struct CommandResult: CustomStringConvertible, Sendable {
    public let status: Int32
    public let stdout: String
    public let stderr: String

    public init(status: Int32, stdout: String, stderr: String) {
        self.status = status
        self.stdout = stdout
        self.stderr = stderr
    }

    public var description: String { "exit \(status)\n--- stdout\n\(stdout)--- stderr\n\(stderr)" }
}

/// Runs a real program to completion: exactly the environment given (plus `PATH` when it has
/// none), stdin a pipe that gets `stdin` and is then closed (so it is never a terminal), bounded
/// in time. A program still running at the bound is killed and the run throws.
public enum Command {
    public static func run(
        _ executable: String, _ arguments: [String], environment: [String: String], stdin: String? = nil,
        mergeStderr: Bool = false, timeout: Duration = .seconds(60)
    ) async throws -> CommandResult {
        let (process, output, errors) = try start(executable, arguments, environment, stdin, mergeStderr)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning || !output.finished || !(errors?.finished ?? true) {
            if ContinuousClock.now >= deadline { throw timedOut(process, arguments, timeout, errors ?? output) }
            try await Task.sleep(for: .milliseconds(5))
        }
        return CommandResult(status: process.exitStatus ?? -1, stdout: output.text, stderr: errors?.text ?? "")
    }

    /// The blocking form, for synchronous helpers. It holds its thread while it waits: call it
    /// from async code only for short commands.
    public static func runBlocking(
        _ executable: String, _ arguments: [String], environment: [String: String], stdin: String? = nil,
        mergeStderr: Bool = false, timeout: Duration = .seconds(60)
    ) throws -> CommandResult {
        let (process, output, errors) = try start(executable, arguments, environment, stdin, mergeStderr)
        let deadline = ContinuousClock.now + timeout
        while process.isRunning || !output.finished || !(errors?.finished ?? true) {
            if ContinuousClock.now >= deadline { throw timedOut(process, arguments, timeout, errors ?? output) }
            usleep(2_000)
        }
        return CommandResult(status: process.exitStatus ?? -1, stdout: output.text, stderr: errors?.text ?? "")
    }

    /// This process's environment, as a dictionary.
    public static var inheritedEnvironment: [String: String] {
        var result: [String: String] = [:]
        var pointer = environ
        while let entry = pointer.pointee {
            let text = String(cString: entry)
            if let equals = text.firstIndex(of: "=") { result[String(text[..<equals])] = String(text[text.index(after: equals)...]) }
            pointer += 1
        }
        return result
    }

    private static func start(
        _ executable: String, _ arguments: [String], _ environment: [String: String], _ stdin: String?, _ mergeStderr: Bool
    ) throws -> (SpawnedProcess, OutputCollector, OutputCollector?) {
        var environment = environment
        if environment["PATH"] == nil { environment["PATH"] = inheritedEnvironment["PATH"] ?? "/usr/bin:/bin" }
        let process = try SpawnedProcess(
            executable: executable, arguments: arguments, environment: environment, stdin: .pipe,
            stdout: .pipe, stderr: mergeStderr ? .stdout : .pipe)
        let output = OutputCollector(descriptor: process.stdoutDescriptor)
        let errors = mergeStderr ? nil : OutputCollector(descriptor: process.stderrDescriptor)
        if let stdin { process.writeToStdin(Array(stdin.utf8)) }
        process.closeStdin()
        return (process, output, errors)
    }

    private static func timedOut(
        _ process: SpawnedProcess, _ arguments: [String], _ timeout: Duration, _ errors: OutputCollector
    ) -> SpawnedProcess.Failure {
        process.signal(SIGKILL)
        return SpawnedProcess.Failure(
            "\(process.programName) \(arguments.joined(separator: " ")) still running after \(timeout); stderr: \(errors.text.suffix(2000))")
    }
}
