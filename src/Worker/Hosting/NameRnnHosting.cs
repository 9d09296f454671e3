using Akka.Cluster.Hosting;
using Akka.Cluster.Hosting.SBR;
using Akka.Hosting;
using Akka.Logger.Serilog;
using Akka.Remote.Hosting;
using NameRnn.Contracts;

namespace NameRnn.Worker.Hosting;

/// <summary>Where a cluster node listens and how it finds the cluster.</summary>
public sealed record ClusterNodeOptions(string Role, string Hostname, int Port, IReadOnlyList<string> SeedNodes, int MaxFrameSize);

/// <summary>The Akka.Hosting configuration every NameRnn node shares.</summary>
public static class NameRnnHosting
{
    public const string SystemName = "namernn";
    public const string CoordinatorRole = "coordinator";
    public const string WorkerRole = "worker";
    public const string CoordinatorName = "coordinator";

    /// <summary>The default remote frame size: room for the parameters of a GRU with 1 024 hidden units.</summary>
    public const int DefaultMaxFrameSize = 16 * 1024 * 1024;

    /// <summary>The TorchSharp dispatcher and Serilog as Akka's logger.</summary>
    public static AkkaConfigurationBuilder AddNameRnnDefaults(this AkkaConfigurationBuilder akka) => akka
        .AddHocon(TorchDispatcher.Hocon, HoconAddMode.Prepend)
        .AddHocon("akka.stdout-loglevel = WARNING", HoconAddMode.Prepend)
        .ConfigureLoggers(loggers =>
        {
            loggers.ClearLoggers();
            loggers.AddLogger<SerilogLogger>();
        });

    /// <summary>Binds every <see cref="INameRnnMessage"/> to the binary <see cref="NameRnnSerializer"/>.</summary>
    public static AkkaConfigurationBuilder AddNameRnnSerialization(this AkkaConfigurationBuilder akka) =>
        akka.WithCustomSerializer("namernn", [typeof(INameRnnMessage)], system => new NameRnnSerializer(system));

    /// <summary>
    /// Remoting over TCP with the same frame size on every node, clustering with the node's role,
    /// and a split-brain resolver that keeps the side of the coordinator: a worker cut off from it
    /// is downed (and its work reassigned), never the coordinator.
    /// </summary>
    public static AkkaConfigurationBuilder AddNameRnnCluster(this AkkaConfigurationBuilder akka, ClusterNodeOptions options) => akka
        .WithRemoting(new RemoteOptions
        {
            HostName = options.Hostname,
            Port = options.Port,
            MaxFrameSize = options.MaxFrameSize,
            SendBufferSize = options.MaxFrameSize,
            ReceiveBufferSize = options.MaxFrameSize,
        })
        .WithClustering(new ClusterOptions
        {
            Roles = [options.Role],
            SeedNodes = options.SeedNodes.ToArray(),
            SplitBrainResolver = new KeepOldestOption { DownIfAlone = false, Role = CoordinatorRole },
        })
        .AddHocon("""
            akka.remote.dot-netty.tcp.batching.enabled = false
            akka.cluster.split-brain-resolver.stable-after = 5s
            akka.cluster.shutdown-after-unsuccessful-join-seed-nodes = 60s
            akka.coordinated-shutdown.exit-clr = off
            """, HoconAddMode.Prepend)
        .AddNameRnnSerialization();

    /// <summary>The bytes one parameter or gradient message needs: the float payload plus room for the names and the header.</summary>
    public static long RequiredFrameSize(int parameterCount, int namesPerMessage) =>
        (long)parameterCount * sizeof(float) + 64 * 1024 + (long)namesPerMessage * 256;
}
