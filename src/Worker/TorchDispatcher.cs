namespace NameRnn.Worker;

/// <summary>
/// The dispatcher TorchSharp work runs on: one dedicated thread per actor (a pinned dispatcher), so
/// that a long step never holds a thread of the default dispatcher (and its heartbeats), and
/// TorchSharp's thread-static dispose scopes stay on one thread.
/// </summary>
public static class TorchDispatcher
{
    public const string Id = "namernn-torch-dispatcher";

    public const string Hocon = $$"""
        {{Id}} {
          type = PinnedDispatcher
          executor = thread-pool-executor
        }
        """;
}
