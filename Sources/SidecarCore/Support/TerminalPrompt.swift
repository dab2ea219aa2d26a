import SystemSupport

#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

/// Reads a line typed at the terminal without echoing it (the pairing code), like `ssh` asks for
/// a passphrase: the prompt goes to stderr, echo is switched off on stdin while the user types,
/// and it is switched back on afterwards, also when the user presses Ctrl-C.
public enum TerminalPrompt {
    /// Whether stdin is a terminal someone can type at.
    public static var standardInputIsTerminal: Bool { isatty(STDIN_FILENO) == 1 }

    /// Shows `prompt` on stderr and reads one line from the terminal on stdin with echo off.
    ///
    /// - Returns: the line without its newline, or nil at end of input.
    public static func readHiddenLine(prompt: String) -> String? {
        writeStandardError(prompt)
        var original = termios()
        let haveTerminal = tcgetattr(STDIN_FILENO, &original) == 0
        if haveTerminal {
            savedTerminalState = original
            signal(SIGINT, restoreAndExit)
            signal(SIGTERM, restoreAndExit)
            var silent = original
            silent.c_lflag &= ~tcflag_t(ECHO)
            silent.c_lflag |= tcflag_t(ECHONL)
            tcsetattr(STDIN_FILENO, TCSAFLUSH, &silent)
        }
        defer {
            if haveTerminal {
                tcsetattr(STDIN_FILENO, TCSAFLUSH, &original)
                signal(SIGINT, SIG_DFL)
                signal(SIGTERM, SIG_DFL)
                savedTerminalState = nil
            }
        }
        var line: [UInt8] = []
        var byte: UInt8 = 0
        while true {
            let count = read(STDIN_FILENO, &byte, 1)
            if count < 0, errno == EINTR { continue }
            if count <= 0 { return line.isEmpty ? nil : String(decoding: line, as: UTF8.self) }
            if byte == UInt8(ascii: "\n") || byte == UInt8(ascii: "\r") { break }
            if line.count < 256 { line.append(byte) }
        }
        return String(decoding: line, as: UTF8.self)
    }

    static func writeStandardError(_ text: String) {
        Descriptor.writeStandardError(text)
    }
}

/// The terminal settings to restore when a signal ends the prompt (read by the signal handler).
nonisolated(unsafe) private var savedTerminalState: termios?

private func restoreAndExit(_ signalNumber: Int32) {
    if var state = savedTerminalState { tcsetattr(STDIN_FILENO, TCSANOW, &state) }
    _exit(128 + signalNumber)
}
