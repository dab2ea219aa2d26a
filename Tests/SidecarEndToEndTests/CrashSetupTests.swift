import AgentWire
import Foundation
import TestSupport
import Testing

/// A shared library, preloaded into `agent-sidecar setup`, that numbers every `fsync` and `rename`
/// (the steps of an atomic file write: flush the temporary file, rename it over the target, flush
/// the directory) and kills the process with SIGKILL just before step `CRASH_AT_STEP`. Built with
/// the toolchain's clang for the test; the product carries no test hook.
enum CrashShim {
    static let source = #"""
        #define _GNU_SOURCE
        #include <dlfcn.h>
        #include <fcntl.h>
        #include <signal.h>
        #include <stdio.h>
        #include <stdlib.h>
        #include <unistd.h>

        static int step = 0;

        static void reach(const char *what, const char *path) {
            int current = __atomic_add_fetch(&step, 1, __ATOMIC_SEQ_CST);
            const char *trace = getenv("CRASH_TRACE");
            if (trace) {
                int fd = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
                if (fd >= 0) { dprintf(fd, "%d %s %s\n", current, what, path); close(fd); }
            }
            const char *at = getenv("CRASH_AT_STEP");
            if (at && atoi(at) == current) kill(getpid(), SIGKILL);
        }

        int fsync(int fd) {
            static int (*real)(int);
            if (!real) real = (int (*)(int))dlsym(RTLD_NEXT, "fsync");
            char link[64], path[4096] = "?";
            snprintf(link, sizeof link, "/proc/self/fd/%d", fd);
            ssize_t length = readlink(link, path, sizeof path - 1);
            if (length >= 0) path[length] = 0;
            reach("fsync", path);
            return real(fd);
        }

        int rename(const char *from, const char *to) {
            static int (*real)(const char *, const char *);
            if (!real) real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
            reach("rename", to);
            return real(from, to);
        }
        """#

    /// Compiles the shim into `directory`; returns the path of the library.
    static func build(in directory: URL) async throws -> String {
        let compiler =
            ["/opt/swift/usr/bin/clang", "/usr/bin/clang", "/usr/bin/cc"].first { FileManager.default.isExecutableFile(atPath: $0) }
            ?? ProcessInfo.processInfo.environment["PATH"]?.split(separator: ":").map { "\($0)/clang" }
            .first { FileManager.default.isExecutableFile(atPath: $0) }
        let cc = try #require(compiler, "no C compiler (clang ships with the Swift toolchain)")
        let sourceFile = directory.appendingPathComponent("crash-shim.c")
        let library = directory.appendingPathComponent("libcrash-shim.so").path
        try source.write(to: sourceFile, atomically: true, encoding: .utf8)
        let result = try await Command.run(cc, ["-shared", "-fPIC", "-O1", "-o", library, sourceFile.path, "-ldl"], environment: [:])
        guard result.status == 0 else { throw TestTimeout(description: "could not build the crash shim: \(result)") }
        return library
    }
}

/// `kill -9` of `agent-sidecar setup` in the middle of writing: every file it touches is the old
/// one or a whole new one, the state that is left says what to do, and `setup` recovers.
@Suite("kill -9 of setup in the middle of writing", .secretScan)
struct CrashSetupTests {
    static let userConfig = "# mine\nmodel = \"o3\"\n\n[mcp_servers.other]\ncommand = \"/usr/bin/other\"\n"
    static let userAgents = "# Project notes\n\nWritten by a person.\n"

    /// The files setup writes, relative to the world.
    static let files = [
        "sidecar-home/profiles/default.json", "sidecar-home/keys/default.key", "sidecar-home/keys/default.kek", "codex/config.toml",
        "codex/config.toml.bak-agent-sidecar", "project/AGENTS.md", "project/AGENTS.md.bak-agent-sidecar",
    ]

    /// A world with a gateway, the user's own config.toml and AGENTS.md, and a second agent with
    /// other grants (so that pairing with it changes AGENTS.md).
    struct Scene {
        let world: PairingWorld
        let gateway: TestGateway
        let otherAgent: String
        let shim: String

        static func make() async throws -> Scene {
            let world = try PairingWorld()
            let gateway = try await TestGateway.start(in: world.root)
            let other = try await gateway.admin([
                "agent", "create", "--owner", "alice", "--name", "codex-ops", "--project", "WEB", "OPS", "--scope", "project:read",
            ])
            let scene = Scene(
                world: world, gateway: gateway, otherAgent: try #require(other["id"]?.stringValue), shim: try await CrashShim.build(in: world.root))
            scene.restoreUserFiles()
            return scene
        }

        func restoreUserFiles() {
            try? FileManager.default.createDirectory(atPath: world.codexHome, withIntermediateDirectories: true)
            _ = FileManager.default.createFile(atPath: world.path("codex/config.toml"), contents: Data(CrashSetupTests.userConfig.utf8))
            _ = FileManager.default.createFile(atPath: world.path("project/AGENTS.md"), contents: Data(CrashSetupTests.userAgents.utf8))
            for backup in ["codex/config.toml.bak-agent-sidecar", "project/AGENTS.md.bak-agent-sidecar"] {
                try? FileManager.default.removeItem(atPath: world.path(backup))
            }
        }

        /// `setup` with a fresh code for `agent` (nil: the default test agent). `flip` adds a
        /// server environment variable, so that the Codex entry changes too.
        func setup(agent: String?, flip: Bool, crashAt step: Int?) async throws -> CommandResult {
            let code = world.issued(try await gateway.pairingCode(agent: agent))
            var environment: [String: String] = [:]
            if flip { environment["XDG_STATE_HOME"] = world.path("xdg-state") }
            if let step {
                environment["LD_PRELOAD"] = shim
                environment["CRASH_AT_STEP"] = "\(step)"
            }
            return try await world.setup(gateway: gateway, code: code, extraEnvironment: environment)
        }

        func snapshot() -> [String: [UInt8]] {
            var files: [String: [UInt8]] = [:]
            for file in CrashSetupTests.files { files[file] = world.read(file) }
            return files
        }
    }

    /// Every file is as it was, or whole and valid; the profile is never newer than the key; and
    /// `status` explains the state left behind in one line.
    static func checkOldOrNew(_ scene: Scene, before: [String: [UInt8]], step: String) async throws {
        let world = scene.world
        var changed: Set<String> = []
        for file in files {
            let now = world.read(file)
            if now == before[file] { continue }
            changed.insert(file)
            guard let now else {
                Issue.record("\(step): \(file) disappeared")
                continue
            }
            let text = String(decoding: now, as: UTF8.self)
            switch file {
            case "sidecar-home/profiles/default.json":
                let profile = try? JSONValue(parsing: now)
                #expect(profile?["gateway"]?.stringValue != nil && profile?["deviceId"]?.stringValue != nil, "\(step): profile \(text)")
                #expect(world.mode(file) == 0o600, "\(step): profile mode")
            case "sidecar-home/keys/default.key":
                let key = try? JSONValue(parsing: now)
                let sealed = key?["ciphertext"]?.stringValue.flatMap { Data(base64Encoded: $0) }
                #expect(key?["format"] == "agent-sidecar/device-key" && sealed?.count == 48, "\(step): key file is not whole")
                #expect(world.mode(file) == 0o600, "\(step): key file mode")
            case "sidecar-home/keys/default.kek":
                #expect(now.count == 32, "\(step): KEK is \(now.count) bytes")
                #expect(world.mode(file) == 0o600, "\(step): KEK mode")
            case "codex/config.toml":
                let config = try await parseTOML(world.path(file))
                #expect(config["mcp_servers"]?["agent-sidecar"]?["command"]?.stringValue != nil, "\(step): \(text)")
                #expect(config["mcp_servers"]?["other"]?["command"] == "/usr/bin/other" && config["model"] == "o3", "\(step): \(text)")
            case "project/AGENTS.md":
                #expect(text.hasPrefix(userAgents), "\(step): \(text)")
                #expect(text.components(separatedBy: "<!-- agent-sidecar:begin profile=default -->").count == 2, "\(step): \(text)")
                #expect(text.components(separatedBy: "<!-- agent-sidecar:end profile=default -->").count == 2, "\(step): \(text)")
            case "codex/config.toml.bak-agent-sidecar":
                #expect(now == before["codex/config.toml"], "\(step): the backup is not the previous config.toml")
            case "project/AGENTS.md.bak-agent-sidecar":
                #expect(now == before["project/AGENTS.md"], "\(step): the backup is not the previous AGENTS.md")
            default:
                break
            }
        }
        // The profile is written after the key: a new profile with the old key would be a broken pair.
        if changed.contains("sidecar-home/profiles/default.json"), before["sidecar-home/profiles/default.json"] != nil {
            #expect(changed.contains("sidecar-home/keys/default.key"), "\(step): new profile, old key")
        }

        let status = try await world.sidecar(["status"])
        #expect([0, 1, 2].contains(status.status), "\(step): status \(status)")
        if status.status != 0 {
            let lines = status.stderr.split(separator: "\n")
            #expect(lines.count == 1 && lines[0].contains("agent-sidecar setup"), "\(step): \(status.stderr)")
        }
    }

    /// Temporary files an interrupted atomic write left behind (`.NAME.tmp-…`).
    static func strayTemporaryFiles(_ world: PairingWorld) -> [String] {
        let walker = FileManager.default.enumerator(atPath: world.root.path)
        var found: [String] = []
        while let relative = walker?.nextObject() as? String {
            if (relative as NSString).lastPathComponent.contains(".tmp-") { found.append(relative) }
        }
        return found.sorted()
    }

    @Test("the first setup, killed before each of its file-system steps")
    func firstSetup() async throws {
        let scene = try await Scene.make()
        var step = 1
        while step < 60 {
            scene.restoreUserFiles()
            let before = scene.snapshot()
            let crashed = try await scene.setup(agent: nil, flip: false, crashAt: step)
            if crashed.status == 0 { break }
            #expect(crashed.status == 128 + SIGKILL, "step \(step): \(crashed)")
            try await Self.checkOldOrNew(scene, before: before, step: "first setup, step \(step)")
            let recovered = try await scene.setup(agent: nil, flip: false, crashAt: nil)
            #expect(recovered.status == 0 && !recovered.stderr.contains("could not"), "step \(step), recovery: \(recovered)")
            // Leaving again takes everything, also what the killed run left half-written (a KEK, say).
            let logout = try await scene.world.sidecar(["logout", "--no-revoke"])
            #expect(logout.status == 0, "step \(step): \(logout)")
            for directory in ["sidecar-home/keys", "sidecar-home/profiles"] {
                let left = (try? FileManager.default.contentsOfDirectory(atPath: scene.world.path(directory))) ?? []
                #expect(left.isEmpty, "step \(step): left in \(directory): \(left)")
            }
            step += 1
        }
        #expect(step > 15, "setup finished after \(step - 1) steps; expected every file write to be a step")
        try await Self.checkNothingLeftAfterLogout(scene)
    }

    @Test("setup again with another agent, killed before each of its file-system steps")
    func repairing() async throws {
        let scene = try await Scene.make()
        #expect(try await scene.setup(agent: nil, flip: false, crashAt: nil).status == 0)
        var step = 1
        var useOther = true
        while step < 60 {
            let agent = useOther ? scene.otherAgent : nil
            let before = scene.snapshot()
            let crashed = try await scene.setup(agent: agent, flip: useOther, crashAt: step)
            if crashed.status == 0 { break }
            #expect(crashed.status == 128 + SIGKILL, "step \(step): \(crashed)")
            try await Self.checkOldOrNew(scene, before: before, step: "re-pairing, step \(step)")
            let recovered = try await scene.setup(agent: agent, flip: useOther, crashAt: nil)
            #expect(recovered.status == 0 && !recovered.stderr.contains("could not"), "step \(step), recovery: \(recovered)")
            useOther.toggle()
            step += 1
        }
        #expect(step > 15, "setup finished after \(step - 1) steps")
        try await Self.checkNothingLeftAfterLogout(scene)
    }

    @Test("setup killed from outside at random moments")
    func randomKills() async throws {
        let scene = try await Scene.make()
        #expect(try await scene.setup(agent: nil, flip: false, crashAt: nil).status == 0)
        var useOther = true
        for round in 0..<12 {
            let agent = useOther ? scene.otherAgent : nil
            let before = scene.snapshot()
            let code = scene.world.issued(try await scene.gateway.pairingCode(agent: agent))
            var environment = scene.world.environment
            if useOther { environment["XDG_STATE_HOME"] = scene.world.path("xdg-state") }
            let process = try SpawnedProcess(
                executable: BuiltProducts.path("agent-sidecar"),
                arguments: [
                    "setup", "--gateway", scene.gateway.url, "--project-dir", scene.world.project, "--device-name", "test-device", "--code", code,
                ], environment: environment, stdin: .null, stdout: .null, stderr: .null)
            try await Task.sleep(for: .microseconds(Int.random(in: 0...400_000)))
            process.signal(SIGKILL)
            _ = try await process.waitForExit(timeout: .seconds(10))
            try await Self.checkOldOrNew(scene, before: before, step: "random kill \(round)")
            let recovered = try await scene.setup(agent: agent, flip: useOther, crashAt: nil)
            #expect(recovered.status == 0, "round \(round), recovery: \(recovered)")
            useOther.toggle()
        }
        try await Self.checkNothingLeftAfterLogout(scene)
    }

    /// After `logout --purge-config`, no key, KEK, profile or stray temporary file is left.
    static func checkNothingLeftAfterLogout(_ scene: Scene) async throws {
        _ = try scene.world.secretMaterial()  // registers the key seed and KEK with the secret scan
        let logout = try await scene.world.sidecar(["logout", "--purge-config"])
        #expect(logout.status == 0, "\(logout)")
        let keys = (try? FileManager.default.contentsOfDirectory(atPath: scene.world.path("sidecar-home/keys"))) ?? []
        #expect(keys.isEmpty, "left in keys/: \(keys)")
        let profiles = (try? FileManager.default.contentsOfDirectory(atPath: scene.world.path("sidecar-home/profiles"))) ?? []
        #expect(profiles.isEmpty, "left in profiles/: \(profiles)")
        #expect(strayTemporaryFiles(scene.world).isEmpty, "stray temporary files: \(strayTemporaryFiles(scene.world))")
    }
}
