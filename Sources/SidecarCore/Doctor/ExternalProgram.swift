import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Runs another program (the Codex CLI, for `doctor`) to completion, bounded in time and output.
enum ExternalProgram {
    struct Result: Sendable {
        let status: Int32
        let stdout: [UInt8]
        let stderr: [UInt8]
        var stdoutText: String { String(decoding: stdout, as: UTF8.self) }
        var stderrText: String { String(decoding: stderr, as: UTF8.self) }
    }

    struct Failure: Error, Sendable, CustomStringConvertible {
        let description: String
    }

    /// The first executable `name` in the `PATH` of `environment`.
    static func find(_ name: String, environment: [String: String]) -> String? {
        for directory in (environment["PATH"] ?? "").split(separator: ":") where !directory.isEmpty {
            let candidate = FileSystem.join(String(directory), name)
            var info = stat()
            if stat(candidate, &info) == 0, (info.st_mode & S_IFMT) == S_IFREG, access(candidate, X_OK) == 0 { return candidate }
        }
        return nil
    }

    /// Runs `executable` with `arguments` and exactly `environment`, stdin from `/dev/null`.
    ///
    /// - Parameters:
    ///   - timeout: After this the program is killed (SIGKILL) and the run fails.
    ///   - maximumOutput: Bytes kept of each of stdout and stderr; the rest is read and dropped.
    static func run(
        _ executable: String, _ arguments: [String], environment: [String: String], timeout: Duration = .seconds(30),
        maximumOutput: Int = 1 << 20
    ) throws(Failure) -> Result {
        // Pipes are made close-on-exec and the child spawned under the process-wide spawn lock,
        // so that no other child of this process inherits their ends.
        ChildProcess.spawnLock.lock()
        var locked = true
        defer { if locked { ChildProcess.spawnLock.unlock() } }
        let outPipe: (read: Int32, write: Int32)
        let errPipe: (read: Int32, write: Int32)
        do { outPipe = try ChildProcess.closeOnExecPipe() } catch { throw Failure(description: "cannot make a pipe: \(error)") }
        do { errPipe = try ChildProcess.closeOnExecPipe() } catch {
            close(outPipe.read)
            close(outPipe.write)
            throw Failure(description: "cannot make a pipe: \(error)")
        }
        let devNull = open("/dev/null", O_RDONLY | O_CLOEXEC)
        defer { if devNull >= 0 { close(devNull) } }
        let pid: pid_t
        do {
            pid = try ChildProcess.spawn(executable, arguments: arguments, environment: environment, stdio: [devNull, outPipe.write, errPipe.write])
        } catch {
            for descriptor in [outPipe.read, outPipe.write, errPipe.read, errPipe.write] { close(descriptor) }
            throw Failure(description: "cannot start \(executable): \(error)")
        }
        ChildProcess.spawnLock.unlock()
        locked = false
        close(outPipe.write)
        close(errPipe.write)

        var output: [[UInt8]] = [[], []]
        var open = [outPipe.read, errPipe.read]
        let deadline = ContinuousClock.now + timeout
        var buffer = [UInt8](repeating: 0, count: 64 * 1024)
        var timedOut = false
        while open.contains(where: { $0 >= 0 }) {
            let left = deadline - ContinuousClock.now
            if left <= .zero {
                timedOut = true
                break
            }
            var fds = open.map { pollfd(fd: $0, events: Int16(POLLIN), revents: 0) }
            let milliseconds = Int32(min(1000, max(1, left.components.seconds * 1000 + left.components.attoseconds / 1_000_000_000_000_000)))
            let ready = poll(&fds, nfds_t(fds.count), milliseconds)
            if ready < 0, errno != EINTR { break }
            for index in fds.indices where open[index] >= 0 && fds[index].revents != 0 {
                let count = buffer.withUnsafeMutableBytes { read(open[index], $0.baseAddress, $0.count) }
                if count > 0 {
                    let room = maximumOutput - output[index].count
                    if room > 0 { output[index] += buffer[0..<min(count, room)] }
                } else if count == 0 || errno != EINTR {
                    close(open[index])
                    open[index] = -1
                }
            }
        }
        for descriptor in open where descriptor >= 0 { close(descriptor) }
        if timedOut { kill(pid, SIGKILL) }
        let status = ChildProcess.waitForStatus(pid)
        if timedOut { throw Failure(description: "\(executable) did not finish within \(timeout)") }
        return Result(status: ChildProcess.exitCode(ofStatus: status), stdout: output[0], stderr: output[1])
    }
}
