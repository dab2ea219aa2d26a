import AgentWire
import SodiumKit

/// A signed-in browser as the console and the owner API see it.
public struct SignedInUser: Sendable {
    public let user: UserRecord
    public let session: BrowserSessionRecord
    /// The token every state change must carry (form field `csrf` or header `X-CSRF-Token`).
    public let csrfToken: String
    /// A cookie to set, when this request started the session (the trusted proxy's header).
    public let newCookieToken: String?
}

/// Why a sign-in was refused: one line for the page, the same for every reason, so that a
/// refused link tells its holder nothing about whether it ever existed.
public struct SignInRefused: Error, Sendable {
    public static let message = "this sign-in link is not valid, was already used, or expired; ask for a new one (agent-gateway user login-link USER)"
    public static let crossSite = "a sign-in came from another site; open your sign-in link directly in the browser's address bar"
}

/// Sign-in links, browser sessions (idle and absolute expiry, server-side sign-out) and CSRF tokens.
extension Gateway {
    static let cookieTokenPrefix = "agc_"
    static let loginLinkPrefix = "agl_"

    func browserTokenHash(_ token: String) -> String { keyedHash("browser-session", token) }
    /// The CSRF token of a session: a keyed hash of its cookie, so nothing more is stored.
    func csrfToken(cookieToken: String) -> String { keyedHash("csrf", cookieToken) }

    /// Whether `candidate` is the session's CSRF token (constant time).
    public func csrfMatches(_ candidate: String?, for signedIn: SignedInUser) -> Bool {
        guard let candidate, candidate.utf8.count == signedIn.csrfToken.utf8.count else { return false }
        return Sodium.constantTimeEqual(Array(candidate.utf8), Array(signedIn.csrfToken.utf8))
    }

    /// Redeems a single-use sign-in link: returns the new session's cookie token.
    public func redeemLoginLink(_ token: String) async throws -> String {
        guard token.hasPrefix(Self.loginLinkPrefix), (20...200).contains(token.utf8.count) else { throw SignInRefused() }
        let hash = GatewayAdmin.loginLinkHash(token, key: hashKey)
        let moment = now
        let cookieToken = Self.cookieTokenPrefix + Base64.encode(random.bytes(32), variant: .urlSafeNoPadding)
        let sessionHash = browserTokenHash(cookieToken)
        let absolute = Int64(configuration.consoleAbsoluteSeconds) * 1000
        let redeemed = try await store.write { store -> Bool in
            guard let link = try store.loginLink(tokenHash: hash), Sodium.constantTimeEqual(Array(link.tokenHash.utf8), Array(hash.utf8)),
                link.usedAt == nil, link.expiresAt > moment, let user = try store.user(id: link.userID), user.blockedAt == nil
            else { return false }
            try store.markLoginLinkUsed(tokenHash: hash, at: moment)
            let session = BrowserSessionRecord(
                id: "bss_\(ULID())", tokenHash: sessionHash, userID: user.id, signedInVia: "link", createdAt: moment, lastSeenAt: moment,
                expiresAt: moment + absolute, endedAt: nil)
            try store.insertBrowserSession(session)
            try OwnerActionLog.record(
                store, actor: .user(user.id), action: "sign_in", subjectID: session.id, subjectOwnerID: user.id, detail: "by sign-in link", at: moment
            )
            return true
        }
        guard redeemed else { throw SignInRefused() }
        return cookieToken
    }

    /// The person behind a session cookie, if the session is open: not ended, not past its idle or
    /// absolute expiry, and the person not blocked. Notes the request time (at most every 30 s).
    public func signedInUser(cookieToken: String?) async throws -> SignedInUser? {
        guard let cookieToken, cookieToken.hasPrefix(Self.cookieTokenPrefix), cookieToken.utf8.count < 200 else { return nil }
        let hash = browserTokenHash(cookieToken)
        let moment = now
        let idle = Int64(configuration.consoleIdleSeconds) * 1000
        let found = try await store.read { store -> (UserRecord, BrowserSessionRecord)? in
            guard let session = try store.browserSession(tokenHash: hash), session.endedAt == nil, session.expiresAt > moment,
                session.lastSeenAt + idle > moment, let user = try store.user(id: session.userID), user.blockedAt == nil
            else { return nil }
            return (user, session)
        }
        guard let (user, session) = found else { return nil }
        if moment - session.lastSeenAt > 30_000 {
            try await store.write { try $0.touchBrowserSession(id: session.id, at: moment) }
        }
        return SignedInUser(user: user, session: session, csrfToken: csrfToken(cookieToken: cookieToken), newCookieToken: nil)
    }

    /// Starts a session for the user a trusted proxy named (the caller checked the proxy's address).
    public func proxySignIn(userID: String) async throws -> SignedInUser? {
        guard (1...64).contains(userID.utf8.count) else { return nil }
        let moment = now
        let cookieToken = Self.cookieTokenPrefix + Base64.encode(random.bytes(32), variant: .urlSafeNoPadding)
        let absolute = Int64(configuration.consoleAbsoluteSeconds) * 1000
        let hash = browserTokenHash(cookieToken)
        let started = try await store.write { store -> (UserRecord, BrowserSessionRecord)? in
            guard let user = try store.user(id: userID), user.blockedAt == nil else { return nil }
            let session = BrowserSessionRecord(
                id: "bss_\(ULID())", tokenHash: hash, userID: user.id, signedInVia: "proxy", createdAt: moment, lastSeenAt: moment,
                expiresAt: moment + absolute, endedAt: nil)
            try store.insertBrowserSession(session)
            try OwnerActionLog.record(
                store, actor: .user(user.id), action: "sign_in", subjectID: session.id, subjectOwnerID: user.id, detail: "by trusted proxy",
                at: moment)
            return (user, session)
        }
        guard let (user, session) = started else { return nil }
        return SignedInUser(user: user, session: session, csrfToken: csrfToken(cookieToken: cookieToken), newCookieToken: cookieToken)
    }

    /// Ends the browser session on the server: its cookie stops working at once.
    public func signOut(_ signedIn: SignedInUser) async throws {
        let moment = now
        try await store.write { store in
            try store.endBrowserSession(id: signedIn.session.id, at: moment)
            try OwnerActionLog.record(
                store, actor: .user(signedIn.user.id), action: "sign_out", subjectID: signedIn.session.id, subjectOwnerID: signedIn.user.id,
                at: moment)
        }
    }
}
