using NameRnn.Worker.Hosting;

namespace NameRnn.Worker;

/// <summary>The worker node's options (section "Worker" of appsettings.json, NAMERNN_WORKER__* variables, the command line).</summary>
public sealed class WorkerSettings
{
    [Option("--seed-node", "address of a cluster node to join, e.g. akka.tcp://namernn@10.0.0.5:4053 (several: comma-separated)", Value = "ADDRESS")]
    public string? SeedNode { get; set; }

    [Option("--hostname", "the address this node listens on and others reach it at", Value = "HOST")]
    public string Hostname { get; set; } = "127.0.0.1";

    [Option("--public-hostname", "the name other nodes reach this one by, when it is not --hostname (e.g. bind 0.0.0.0 in a container)", Value = "HOST")]
    public string? PublicHostname { get; set; }

    [Option("--port", "the TCP port this node listens on; 0 = any free port", Value = "P")]
    public int Port { get; set; }

    [Option("--slots", "worker actors on this node (one TorchSharp thread each)", Value = "N")]
    public int Slots { get; set; } = 1;

    [Option("--max-frame-size", "largest remote message in bytes; the same on every node", Value = "BYTES")]
    public int MaxFrameSize { get; set; } = NameRnnHosting.DefaultMaxFrameSize;

    [Option("--cluster-secret", "the secret the coordinator asks of workers (default: none)", Value = "TEXT")]
    public string ClusterSecret { get; set; } = "";

    [OptionGroup]
    public TlsSettings Tls { get; set; } = new();

    [Option("--direct-blocks", "on or off: send the gradient blocks the other workers wait for over direct TCP connections between the workers (any free port on --hostname) instead of through Akka's remoting; blocks that cannot go that way still go through the remoting; off with TLS", Value = "MODE")]
    public string DirectBlocks { get; set; } = "on";

    [Option("--block-port", "the TCP port of the first slot's direct block link (slot i listens on P + i - 1), for firewalls and container port lists; 0 = any free port", Value = "P")]
    public int BlockPort { get; set; }

    /// <summary>The slots' direct links for block sums, or null: asked off, or TLS (the blocks then keep Akka's TLS).</summary>
    public BlockLinkOptions? BlockLinks => DirectBlocks == "on" && Tls.Options() is null ? new BlockLinkOptions(Hostname, ClusterSecret, MaxFrameSize, BlockPort) : null;

    [Option("--test-slow-ms", "answer this much later per micro-batch (a straggler)", Hidden = true)]
    public int TestSlowMs { get; set; }

    [Option("--test-fail-at", "throw once on STEP:MICROBATCH", Hidden = true)]
    public string? TestFailAt { get; set; }

    public WorkerFaults Faults => new(TimeSpan.FromMilliseconds(TestSlowMs), WorkerFaults.ParseFailAt(TestFailAt));

    [Option("--log-file", "also write the node's log to this CLEF file (compact JSON, one event per line)", Value = "PATH")]
    public string? LogFile { get; set; }

    [Option("--log-level", "verbose, debug, information, warning or error", Value = "LEVEL")]
    public string LogLevel { get; set; } = "information";

    [Option("--verbose", "debug logs and stack traces", Value = "")]
    public bool Verbose { get; set; }

    [Option("--help", "show this help", Value = "")]
    public bool Help { get; set; }

    public IReadOnlyList<string> SeedNodes =>
        (SeedNode ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries);

    public void Validate()
    {
        if (SeedNodes.Count == 0)
            throw new UsageException("option --seed-node: required: the address of the coordinator's node, e.g. akka.tcp://namernn@127.0.0.1:4053");
        foreach (var seed in SeedNodes)
            if (!seed.StartsWith($"akka.tcp://{NameRnnHosting.SystemName}@", StringComparison.Ordinal) &&
                !seed.StartsWith($"akka.ssl.tcp://{NameRnnHosting.SystemName}@", StringComparison.Ordinal))
                throw new UsageException($"option --seed-node: '{seed}' is not an address like akka.tcp://{NameRnnHosting.SystemName}@HOST:PORT (akka.ssl.tcp:// with TLS)");
        CommandLine.Range("--port", Port, 0, 65535);
        CommandLine.Range("--slots", Slots, 1, 256);
        CommandLine.OneOf("--direct-blocks", DirectBlocks, ["on", "off"]);
        CommandLine.Range("--block-port", BlockPort, 0, 65535);
        if (BlockPort > 0 && BlockPort + Slots - 1 > 65535)
        {
            var first = 65535 - BlockPort + 2;
            throw new UsageException($"option --block-port: {BlockPort} leaves no port for {(first == Slots ? $"slot {Slots}" : $"slots {first} to {Slots}")} of --slots {Slots} (slot i listens on --block-port + i - 1, at most 65535)");
        }
        CommandLine.Range("--max-frame-size", MaxFrameSize, 128_000, 1 << 30);
        _ = Faults;
        _ = NodeLogging.Parse(LogLevel);
        Tls.Options()?.Load().Dispose();
    }
}
