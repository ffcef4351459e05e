/// The demo's command line: `session-demo [--storage URL] [--host H] [--port P] [--secret S]`.
struct DemoOptions: Sendable {
    var storage = "memory://demo"
    var host = "127.0.0.1"
    var port = 8080
    /// `nil`: a random key for this process (sessions do not survive a restart).
    var secret: String?
    /// Seconds; short values make the countdowns visible.
    var idlingTimeout = 900
    var rollingTimeout = 3600
    var absoluteTimeout = 86_400

    static let usage = """
        usage: session-demo [--storage URL] [--host HOST] [--port PORT] [--secret SECRET]
                            [--idling-timeout S] [--rolling-timeout S] [--absolute-timeout S]

          --storage URL   where sessions live (default memory://demo), e.g.
                          redis://127.0.0.1:6379/0, redis-sentinel://h:26379/mymaster,
                          memcached://127.0.0.1:11211, mysql://user:pass@127.0.0.1/db?migrate=true,
                          postgres://user:pass@127.0.0.1/db?migrate=true
          --secret S      the cookie key (default: $SESSION_DEMO_SECRET, else random per run)
        """

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    init() {}

    init(arguments: [String], environment: [String: String]) throws(Failure) {
        secret = environment["SESSION_DEMO_SECRET"].flatMap { $0.isEmpty ? nil : $0 }
        var iterator = arguments.makeIterator()
        func value(_ flag: String) throws(Failure) -> String {
            guard let value = iterator.next() else { throw Failure(description: "\(flag) needs a value\n\(Self.usage)") }
            return value
        }
        func seconds(_ flag: String) throws(Failure) -> Int {
            guard let number = Int(try value(flag)), number >= 0 else { throw Failure(description: "\(flag) takes whole seconds") }
            return number
        }
        while let argument = iterator.next() {
            switch argument {
            case "--storage": storage = try value(argument)
            case "--host": host = try value(argument)
            case "--port":
                guard let number = Int(try value(argument)), (0...65_535).contains(number) else {
                    throw Failure(description: "--port takes a number from 0 to 65535")
                }
                port = number
            case "--secret": secret = try value(argument)
            case "--idling-timeout": idlingTimeout = try seconds(argument)
            case "--rolling-timeout": rollingTimeout = try seconds(argument)
            case "--absolute-timeout": absoluteTimeout = try seconds(argument)
            case "-h", "--help": throw Failure(description: Self.usage)
            default: throw Failure(description: "unknown argument \(argument)\n\(Self.usage)")
            }
        }
    }
}
