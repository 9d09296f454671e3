using Akka.Actor;
using Akka.Hosting;
using Akka.Logger.Serilog;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using NameRnn.Worker;
using Serilog;

namespace NameRnn.Coordinator.Training;

/// <summary>Local single-process mode: one ActorSystem, the coordinator and N worker actors, no remoting.</summary>
public static class LocalTraining
{
    public const string SystemName = "namernn";

    public static async Task<object> RunAsync(TrainingPlan plan, int workers, ILogger log, CancellationToken cancellation)
    {
        var builder = Host.CreateEmptyApplicationBuilder(new HostApplicationBuilderSettings());
        builder.Services.AddSerilog(log);
        builder.Services.AddAkka(SystemName, (akka, _) =>
        {
            akka.AddHocon(TorchDispatcher.Hocon, HoconAddMode.Prepend);
            akka.ConfigureLoggers(loggers =>
            {
                loggers.ClearLoggers();
                loggers.AddLogger<SerilogLogger>();
            });
        });
        using var host = builder.Build();
        await host.StartAsync(cancellation);
        try
        {
            var system = host.Services.GetRequiredService<ActorSystem>();
            var coordinator = system.ActorOf(TrainingCoordinator.Props(plan), "coordinator");
            for (var i = 1; i <= workers; i++)
                system.ActorOf(GradientWorker.Props(coordinator, $"local-{i}"), $"worker-{i}");
            return await coordinator.Ask<object>(StartTraining.Instance, Timeout.InfiniteTimeSpan, cancellation);
        }
        finally
        {
            await host.StopAsync(CancellationToken.None);
        }
    }
}
