using Akka.Actor;
using Akka.Cluster;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NameRnn.Worker;
using NameRnn.Worker.Hosting;
using Serilog;

namespace NameRnn.Coordinator.Training;

/// <summary>How the coordinator's node is reached in cluster mode.</summary>
public sealed record ClusterMode(string Hostname, string? PublicHostname, int Port, IReadOnlyList<string> SeedNodes, int MaxFrameSize, string? AddressFile, TlsOptions? Tls);

/// <summary>
/// Runs a plan in an actor system of its own. Local mode: the coordinator and N worker actors in
/// this process, no remoting. Cluster mode: the coordinator on a cluster node with the role
/// "coordinator" (its own seed unless told otherwise) and workers on other nodes.
/// </summary>
public static class TrainingHost
{
    public static async Task<object> RunAsync(TrainingPlan plan, int localWorkers, ClusterMode? cluster, WorkerFaults firstWorkerFaults, ILogger log,
        CancellationToken cancellation, Runs.RecorderOptions? recording = null)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddSerilog(log);
        builder.Services.AddAkka(NameRnnHosting.SystemName, (akka, _) =>
        {
            akka.AddNameRnnDefaults(localThreads: cluster is null ? TorchDispatcher.LocalThreads(localWorkers) : null, TorchDispatcher.CoordinatorNice);
            if (cluster is not null)
                akka.AddNameRnnCluster(new ClusterNodeOptions(NameRnnHosting.CoordinatorRole, cluster.Hostname, cluster.Port, cluster.SeedNodes, cluster.MaxFrameSize, cluster.PublicHostname) { Tls = cluster.Tls });
        });
        using var host = builder.Build();
        await host.StartAsync(cancellation);
        try
        {
            var system = host.Services.GetRequiredService<ActorSystem>();
            var recorder = recording is null ? null : system.ActorOf(Runs.RunRecorder.Props(recording), "recorder");
            var coordinator = system.ActorOf(TrainingCoordinator.Props(plan, recorder), NameRnnHosting.CoordinatorName);
            for (var i = 1; i <= localWorkers; i++)
                system.ActorOf(GradientWorker.Props(coordinator, $"local-{i}", faults: i == 1 ? firstWorkerFaults : null), $"worker-{i}");
            if (cluster is not null) AnnounceClusterNode(system, cluster, log);
            return await coordinator.Ask<object>(StartTraining.Instance, Timeout.InfiniteTimeSpan, cancellation);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }

    private static void AnnounceClusterNode(ActorSystem system, ClusterMode mode, ILogger log)
    {
        var node = Cluster.Get(system);
        if (mode.SeedNodes.Count == 0) node.Join(node.SelfAddress);
        var address = node.SelfAddress.ToString();
        log.Information("Coordinator node {Address} waiting for workers; start them with --seed-node {Address}", address, address);
        if (mode.AddressFile is not null)
        {
            var temporary = mode.AddressFile + ".tmp";
            File.WriteAllText(temporary, address + Environment.NewLine);
            File.Move(temporary, mode.AddressFile, overwrite: true);
        }
    }
}
