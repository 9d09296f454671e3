using Akka.Actor;
using Akka.Hosting;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NameRnn.Worker.Hosting;
using Serilog;
using TorchSharp;

namespace NameRnn.Worker;

/// <summary>
/// The worker node: joins the cluster with the role "worker", finds the coordinator through
/// cluster membership and serves gradient work with N worker actors. It needs no data files.
/// Exit code 0 when the coordinator it served has left, 2 for a usage error, 1 for a failure.
/// </summary>
public static class WorkerProgram
{
    public static async Task<int> RunAsync(string[] args, TextWriter stderr, CancellationToken cancellation)
    {
        var settings = new WorkerSettings();
        try
        {
            CommandLine.Configure(settings, "Worker");
            var rest = CommandLine.Apply(settings, args);
            if (settings.Help)
            {
                stderr.WriteLine("usage: namernn-worker --seed-node akka.tcp://namernn@HOST:PORT [options]");
                stderr.WriteLine(CommandLine.Help(new WorkerSettings()));
                return 0;
            }
            if (rest.Count > 0) throw new UsageException($"unexpected argument '{rest[0]}'");
            settings.Validate();
        }
        catch (UsageException e)
        {
            stderr.WriteLine($"error: {e.Message}");
            return 2;
        }

        var runId = new RunIdEnricher();
        using var logger = NodeLogging.Create(stderr, settings.Verbose ? Serilog.Events.LogEventLevel.Debug : NodeLogging.Parse(settings.LogLevel),
            NameRnnHosting.WorkerRole, $"{settings.Hostname}:{settings.Port}", settings.LogFile, runId);
        Log.Logger = logger;
        try
        {
            if (!NativeAllocator.Tune()) Log.Debug("glibc's mallopt is not available: the allocator keeps its defaults");
            torch.set_num_threads(1);
            var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
            builder.Services.AddSerilog(logger);
            builder.Services.AddAkka(NameRnnHosting.SystemName, (akka, _) => akka
                .AddNameRnnDefaults(localThreads: null)
                .AddNameRnnCluster(new ClusterNodeOptions(NameRnnHosting.WorkerRole, settings.Hostname, settings.Port, settings.SeedNodes, settings.MaxFrameSize, settings.PublicHostname) { Tls = settings.Tls.Options() })
                .WithActors((system, _) => system.ActorOf(WorkerNode.Props(settings.Slots, settings.ClusterSecret, settings.Faults, runId, settings.BlockLinks), "worker-node")));
            using var host = builder.Build();
            await host.StartAsync(cancellation);
            var system = host.Services.GetRequiredService<ActorSystem>();
            logger.Information("Worker node {Address} with {Slots} slot(s) joining {SeedNodes}",
                Akka.Cluster.Cluster.Get(system).SelfAddress, settings.Slots, string.Join(",", settings.SeedNodes));
            await Task.WhenAny(system.WhenTerminated, Task.Delay(Timeout.Infinite, cancellation));
            var reason = CoordinatedShutdown.Get(system).ShutdownReason;
            await host.StopAsync(CancellationToken.None);
            if (reason is CoordinatorLostReason) return 1;
            if (reason is CoordinatedShutdown.ClusterJoinUnsuccessfulReason)
            {
                logger.Error("Could not join the cluster at {SeedNodes}", string.Join(",", settings.SeedNodes));
                return 1;
            }
            return 0;
        }
        catch (Exception e)
        {
            logger.Fatal(e, "Worker node failed");
            return 1;
        }
    }
}
