import Foundation
import RestySession

/// The demo's pages: plain server-rendered HTML, with a few lines of script for the countdowns.
enum DemoPages {
    static func escape(_ text: String) -> String {
        var result = ""
        for character in text {
            switch character {
            case "&": result += "&amp;"
            case "<": result += "&lt;"
            case ">": result += "&gt;"
            case "\"": result += "&quot;"
            case "'": result += "&#39;"
            default: result.append(character)
            }
        }
        return result
    }

    static func layout(title: String, storage: String, body: String) -> String {
        """
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escape(title)) · swift-resty-session demo</title>
        <style>
        body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
        h1 { font-size: 1.5rem; } table { border-collapse: collapse; width: 100%; }
        td, th { text-align: left; padding: .35rem .5rem; border-bottom: 1px solid #ddd; }
        .this { background: #eef7ee; } .muted { color: #777; font-size: .9rem; }
        form.inline { display: inline; } button { cursor: pointer; }
        .actions { margin: 1rem 0; display: flex; gap: .5rem; flex-wrap: wrap; }
        code { font-size: .85rem; }
        </style>
        </head>
        <body>
        \(body)
        <p class="muted">storage: <code id="storage">\(escape(storage))</code></p>
        <script>
        setInterval(function () {
          document.querySelectorAll('[data-seconds]').forEach(function (el) {
            var s = Math.max(0, parseInt(el.dataset.seconds, 10) - 1);
            el.dataset.seconds = s;
            var h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
            el.textContent = (h ? h + 'h ' : '') + (h || m ? m + 'm ' : '') + r + 's';
          });
        }, 1000);
        </script>
        </body>
        </html>
        """
    }

    static func signIn(storage: String, message: String?) -> String {
        layout(title: "Sign in", storage: storage, body: """
            <h1>Sign in</h1>
            \(message.map { "<p id=\"message\">\(escape($0))</p>" } ?? "")
            <p>Any name, no password: this demo shows sessions, not accounts.</p>
            <form method="post" action="/signin">
              <label>Name <input id="name" name="name" required maxlength="64" autofocus></label>
              <button id="signin" type="submit">Sign in</button>
            </form>
            """)
    }

    static func countdown(_ seconds: Int?) -> String {
        guard let seconds else { return "<span class=\"muted\">off</span>" }
        return "<span data-seconds=\"\(seconds)\">\(format(seconds))</span>"
    }

    /// `1h 2m 3s`, `2m 3s`, `3s`, as the countdown script writes it.
    static func format(_ seconds: Int) -> String {
        let hours = seconds / 3600
        let minutes = seconds % 3600 / 60
        var text = hours > 0 ? "\(hours)h " : ""
        if hours > 0 || minutes > 0 { text += "\(minutes)m " }
        return text + "\(seconds % 60)s"
    }

    static func date(_ unix: Int) -> String {
        let formatter = ISO8601DateFormatter()
        return formatter.string(from: Date(timeIntervalSince1970: TimeInterval(unix)))
    }

    static func me(session: Session, sessions: SessionList, now: Int, storage: String, message: String?) -> String {
        let user = escape(session.subject ?? "")
        let current = session.storageKey
        var rows = ""
        for (key, expiry) in sessions.sessions.sorted(by: { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }) {
            let isThis = key == current
            let action = isThis
                ? "<em>this browser</em>"
                : """
                <form class="inline" method="post" action="/sessions/revoke">
                  <input type="hidden" name="key" value="\(escape(key))">
                  <button class="revoke" type="submit">Sign out this one</button>
                </form>
                """
            rows += """
                <tr class="session\(isThis ? " this" : "")">
                  <td><code>\(escape(String(key.prefix(10))))…</code></td>
                  <td>\(countdown(max(0, expiry - now)))</td>
                  <td>\(action)</td>
                </tr>

                """
        }
        let created = session.creationTime.map(date) ?? "-"
        return layout(title: "My session", storage: storage, body: """
            <h1>Signed in as <span id="user">\(user)</span></h1>
            \(message.map { "<p id=\"message\">\(escape($0))</p>" } ?? "")
            <h2>This session</h2>
            <table>
              <tr><th>created</th><td>\(created)</td></tr>
              <tr><th>idling timeout in</th><td id="idling">\(countdown(session.idlingTimeoutRemaining))</td></tr>
              <tr><th>rolling timeout in</th><td id="rolling">\(countdown(session.rollingTimeoutRemaining))</td></tr>
              <tr><th>absolute timeout in</th><td id="absolute">\(countdown(session.absoluteTimeoutRemaining))</td></tr>
            </table>
            <h2>My active sessions (<span id="count">\(sessions.sessions.count)</span>)</h2>
            <p class="muted">Every browser or device signed in as \(user), from the per-user index of the store; the time is when each expires unless used.</p>
            <table id="sessions">
              <tr><th>session</th><th>expires in</th><th></th></tr>
            \(rows)</table>
            <div class="actions">
              <form method="post" action="/sessions/revoke-others"><button id="revoke-others" type="submit">Sign out all others</button></form>
              <form method="post" action="/sessions/revoke-all"><button id="revoke-all" type="submit">Sign out everywhere</button></form>
              <form method="post" action="/signout"><button id="signout" type="submit">Sign out</button></form>
            </div>
            """)
    }
}
