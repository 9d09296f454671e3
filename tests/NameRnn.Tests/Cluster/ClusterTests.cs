using System.Text.Json;

namespace NameRnn.Tests.Cluster;

/// <summary>Coordinator and workers as separate processes forming a real cluster over TCP on 127.0.0.1.</summary>
public class ClusterTests
{
    private static readonly TimeSpan Limit = TimeSpan.FromMinutes(3);

    private static JsonElement Summary(string dir) => JsonDocument.Parse(File.ReadAllText(Path.Combine(dir, "summary.json"))).RootElement;

    private static async Task<string> LocalOneWorkerHashAsync(string dir, string[] options)
    {
        var local = await CliRunner.RunAsync(["train", "--data", TestData.NamesFolder, "--out", dir, "--workers", "1", .. options]);
        Assert.True(local.ExitCode == 0, local.Error);
        return Summary(dir).GetProperty("parameters_sha256").GetString()!;
    }

    /// <summary>A run through deploy/local-cluster.sh; its summary, and the output of every process it started.</summary>
    private static async Task<(JsonElement Summary, string Output)> LocalClusterAsync(string dir, int workers, string[] options, Dictionary<string, string>? environment = null)
    {
        using var script = NodeProcess.Start("bash", environment ?? [], [Path.Combine(TestData.RepositoryRoot, "deploy", "local-cluster.sh"),
            "--workers", workers.ToString(), "--configuration", NodeProcess.Configuration, "--no-build", "--",
            "--data", TestData.NamesFolder, "--out", dir, .. options]);
        var code = await script.WaitForExitAsync(Limit);
        Assert.True(code == 0, $"local-cluster.sh exited with {code}:{Environment.NewLine}{script.Output}");
        return (Summary(dir), script.Output);
    }

    /// <summary>The cluster run ended with the parameters of a local run with one worker and the same options.</summary>
    private static async Task AssertBitsOfOneLocalWorkerAsync(string root, JsonElement cluster, string[] options) =>
        Assert.Equal(await LocalOneWorkerHashAsync(Path.Combine(root, "local"), options), cluster.GetProperty("parameters_sha256").GetString());

    private static int Count(string text, string part) => text.Split(part).Length - 1;

    [Fact]
    public async Task Two_worker_processes_end_with_the_bits_of_one_local_worker()
    {
        string[] options = ["--max-names", "800", "--epochs", "2", "--batch-size", "64", "--micro-batch", "16"];
        var root = TestData.TempFolder();
        var (cluster, output) = await LocalClusterAsync(Path.Combine(root, "cluster"), 2, options);
        // Each worker sent the other its blocks over its direct link, and none had to fall back to the remoting.
        Assert.True(Count(output, "over a direct connection") == 2, output);
        Assert.DoesNotContain("block link", output);
        Assert.Equal("cluster", cluster.GetProperty("mode").GetString());
        Assert.Equal(2, cluster.GetProperty("workers_seen").GetInt32());
        Assert.All(cluster.GetProperty("micro_batches_per_worker").EnumerateObject(), w => Assert.True(w.Value.GetInt32() > 0, $"{w.Name} did no work"));
        await AssertBitsOfOneLocalWorkerAsync(root, cluster, options);
    }

    [Fact]
    public async Task A_hidden_512_model_trains_across_processes_without_dropped_payloads()
    {
        string[] options = ["--hidden", "512", "--max-names", "256", "--epochs", "1", "--batch-size", "64", "--micro-batch", "32"];
        var root = TestData.TempFolder();
        // Every block through the remoting (the workers' direct links off), the largest messages it carries.
        var (cluster, output) = await LocalClusterAsync(Path.Combine(root, "cluster"), 2, options, new() { ["NAMERNN_WORKER__DIRECTBLOCKS"] = "off" });
        Assert.DoesNotContain("over a direct connection", output);
        await AssertBitsOfOneLocalWorkerAsync(root, cluster, options);
    }

    [Fact]
    public async Task A_local_cluster_with_tls_passes_the_certificate_to_its_workers_and_keeps_every_block_on_the_remoting()
    {
        string[] options = ["--max-names", "400", "--epochs", "1", "--batch-size", "64", "--micro-batch", "16"];
        var root = TestData.TempFolder();
        var pfx = await TestData.SelfSignedPfxAsync(root);
        var (cluster, output) = await LocalClusterAsync(Path.Combine(root, "cluster"), 2,
            [.. options, "--tls-certificate", pfx, "--tls-password=pw", "--tls-insecure"]);
        Assert.Equal(2, cluster.GetProperty("workers_seen").GetInt32());
        // With TLS the workers' direct links are off: the blocks keep the remoting's TLS.
        Assert.DoesNotContain("over a direct connection", output);
        await AssertBitsOfOneLocalWorkerAsync(root, cluster, options);
    }

    [Fact]
    public async Task A_worker_that_joins_mid_run_gets_work_and_the_bits_do_not_change()
    {
        string[] options = ["--max-names", "3000", "--epochs", "4", "--batch-size", "64", "--micro-batch", "16"];
        var root = TestData.TempFolder();
        var dir = Path.Combine(root, "cluster");
        var addressFile = Path.Combine(root, "address");
        using var coordinator = NodeProcess.Start(NodeProcess.Coordinator, ["train", "--cluster", "--hostname", "127.0.0.1", "--port", "0",
            "--address-file", addressFile, "--min-workers", "1", "--data", TestData.NamesFolder, "--out", dir, .. options]);
        await coordinator.WaitForLineAsync(l => l.Contains("waiting for workers"), Limit);
        var address = File.ReadAllText(addressFile).Trim();
        // The first worker is slowed down (the bits do not depend on it) so that the run outlasts the late worker's start.
        var workerLog = Path.Combine(root, "worker.clef");
        using var first = NodeProcess.Start(NodeProcess.Worker, "--seed-node", address, "--hostname", "127.0.0.1", "--test-slow-ms", "10",
            "--log-file", workerLog);
        await coordinator.WaitForLineAsync(l => l.Contains("Epoch 1/4"), Limit);
        using var late = NodeProcess.Start(NodeProcess.Worker, "--seed-node", address, "--hostname", "127.0.0.1");
        await coordinator.WaitForLineAsync(l => l.Contains("joined mid-run"), Limit);
        Assert.Equal(0, await coordinator.WaitForExitAsync(Limit));

        var cluster = Summary(dir);
        Assert.Equal(2, cluster.GetProperty("workers_seen").GetInt32());
        Assert.All(cluster.GetProperty("micro_batches_per_worker").EnumerateObject(), w => Assert.True(w.Value.GetInt32() > 0, $"{w.Name} did no work"));
        await AssertBitsOfOneLocalWorkerAsync(root, cluster, options);
        Assert.Equal(0, await first.WaitForExitAsync(TimeSpan.FromSeconds(30)));

        // The worker node's own log file: CLEF lines tagged with its role and, once it joined, the run it worked for.
        var events = File.ReadAllLines(workerLog).Select(l => JsonDocument.Parse(l).RootElement).ToList();
        Assert.All(events, e => Assert.Equal("worker", e.GetProperty("Role").GetString()));
        var runId = cluster.GetProperty("run_id").GetString();
        Assert.Contains(events, e => e.TryGetProperty("RunId", out var id) && id.GetString() == runId && e.GetProperty("@mt").GetString()!.Contains("joined run"));
        Assert.Equal(0, await late.WaitForExitAsync(TimeSpan.FromSeconds(30)));
    }
}
