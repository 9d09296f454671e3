using System.Text.Json;
using NameRnn.Coordinator.Cli;
using NameRnn.Worker.Hosting;
using NameRnn.Model.Data;
using NameRnn.Model.Network;
using NameRnn.Model.Training;

namespace NameRnn.Tests.Cli;

public class TrainTests
{
    private static readonly string[] Quick = ["--max-names", "600", "--epochs", "2", "--batch-size", "64", "--micro-batch", "16"];

    private static async Task<JsonElement> TrainAsync(string outDir, params string[] extra)
    {
        var result = await CliRunner.RunAsync(["train", "--data", TestData.NamesFolder, "--out", outDir, .. Quick, .. extra]);
        Assert.True(result.ExitCode == 0, result.Error);
        return JsonDocument.Parse(File.ReadAllText(Path.Combine(outDir, "summary.json"))).RootElement;
    }

    [Fact]
    public async Task Parameters_are_the_same_bits_for_one_two_and_three_workers_with_or_without_replicas_and_for_a_loop_without_actors()
    {
        var root = TestData.TempFolder();
        var hashes = new List<string>();
        foreach (var workers in new[] { 1, 2, 3 })
        {
            var summary = await TrainAsync(Path.Combine(root, $"w{workers}"), "--workers", workers.ToString());
            Assert.Equal(workers, summary.GetProperty("workers").GetInt32());
            hashes.Add(summary.GetProperty("parameters_sha256").GetString()!);
        }
        // Workers that keep replicas and take the steps themselves (in local mode only when asked): the same bits.
        hashes.Add((await TrainAsync(Path.Combine(root, "replicas"), "--workers", "3", "--replicas", "on")).GetProperty("parameters_sha256").GetString()!);
        // And in segments of up to 5 steps, which the workers take among themselves (cluster mode's way, 64 there).
        var segments = await TrainAsync(Path.Combine(root, "segments"), "--workers", "2", "--replicas", "on", "--segment-steps", "5");
        hashes.Add(segments.GetProperty("parameters_sha256").GetString()!);
        Assert.Equal(hashes[0], hashes[1]);
        Assert.Equal(hashes[0], hashes[2]);
        Assert.Equal(hashes[0], hashes[3]);
        Assert.Equal(hashes[0], hashes[4]);

        var settings = new TrainSettings { Out = "unused" };
        CommandLine.Apply(settings, Quick);
        var options = settings.ToTrainingOptions();
        var data = NamesData.Load(TestData.NamesFolder);
        var train = TrainCommand.Subset(data.SplitOf(Split.Train), settings.MaxNames);
        var config = options.Model(data.Labels.Count);
        var run = new TrainingRun(options, config, train, ParameterInit.Create(config, options.Seed));
        var plain = PlainTrainer.Train(run, TrainingRun.ClassWeights(train, config.Classes, options.ClassWeightPower));
        Assert.Equal(hashes[0], ModelStore.Sha256(plain));
    }

    [Fact]
    public async Task Dropout_masks_do_not_depend_on_the_worker_count()
    {
        var root = TestData.TempFolder();
        string[] gru = ["--cell", "gru", "--hidden", "16", "--dropout", "0.3"];
        var one = await TrainAsync(Path.Combine(root, "one"), [.. gru, "--workers", "1"]);
        var three = await TrainAsync(Path.Combine(root, "three"), [.. gru, "--workers", "3"]);
        var none = await TrainAsync(Path.Combine(root, "none"), ["--cell", "gru", "--hidden", "16", "--dropout", "0", "--workers", "1"]);
        Assert.Equal(one.GetProperty("parameters_sha256").GetString(), three.GetProperty("parameters_sha256").GetString());
        Assert.NotEqual(one.GetProperty("parameters_sha256").GetString(), none.GetProperty("parameters_sha256").GetString());
    }

    [Fact]
    public async Task Another_seed_gives_other_parameters()
    {
        var root = TestData.TempFolder();
        var a = await TrainAsync(Path.Combine(root, "a"), "--workers", "1");
        var b = await TrainAsync(Path.Combine(root, "b"), "--workers", "1", "--seed", "2");
        Assert.NotEqual(a.GetProperty("parameters_sha256").GetString(), b.GetProperty("parameters_sha256").GetString());
    }

    [Fact]
    public async Task A_trained_model_predicts_and_evaluates_from_its_folder()
    {
        var dir = Path.Combine(TestData.TempFolder(), "model");
        var summary = await TrainAsync(dir, "--max-names", "5000", "--epochs", "3", "--micro-batch", "32");
        var testAccuracy = summary.GetProperty("test_accuracy").GetDouble();
        Assert.True(testAccuracy > 0.6, $"test accuracy {testAccuracy}: no better than always saying Russian (0.514)");

        var evaluate = await CliRunner.RunAsync("evaluate", "--model", dir, "--data", TestData.NamesFolder, "--json");
        Assert.True(evaluate.ExitCode == 0, evaluate.Error);
        var report = JsonDocument.Parse(evaluate.Out).RootElement;
        Assert.Equal(testAccuracy, report.GetProperty("accuracy").GetDouble(), 12);
        Assert.Equal(summary.GetProperty("test_macro_f1").GetDouble(), report.GetProperty("macro_f1").GetDouble(), 12);
        var confusion = report.GetProperty("confusion").EnumerateArray().Select(r => r.EnumerateArray().Select(v => v.GetInt32()).ToArray()).ToArray();
        Assert.Equal(1794, confusion.Sum(r => r.Sum()));

        // The same accuracy, counted from predict's top-1 answers for every test name.
        var data = NamesData.Load(TestData.NamesFolder);
        var test = data.SplitOf(Split.Test);
        var predict = await CliRunner.RunAsync(["predict", "--model", dir, "--top", "1", "--json", .. test.Select(p => p.Name)]);
        Assert.True(predict.ExitCode == 0, predict.Error);
        var answers = JsonDocument.Parse(predict.Out).RootElement.EnumerateArray().ToList();
        Assert.Equal(test.Count, answers.Count);
        var correct = answers.Zip(test).Count(x => x.First.GetProperty("predictions")[0].GetProperty("language").GetString() == data.Labels[x.Second.Label]);
        Assert.Equal(testAccuracy, (double)correct / test.Count, 12);
    }

    [Fact]
    public async Task A_pooled_two_layer_model_trains_the_same_bits_on_any_worker_count_and_evaluates_from_its_folder()
    {
        var root = TestData.TempFolder();
        string[] shape = ["--cell", "gru", "--hidden", "12", "--embedding", "8", "--pooling", "last-mean-max", "--layers", "2", "--label-smoothing", "0.1"];
        var one = await TrainAsync(Path.Combine(root, "one"), [.. shape, "--workers", "1"]);
        var three = await TrainAsync(Path.Combine(root, "three"), [.. shape, "--workers", "3"]);
        Assert.Equal(one.GetProperty("parameters_sha256").GetString(), three.GetProperty("parameters_sha256").GetString());

        var dir = Path.Combine(root, "one");
        var saved = ModelStore.Load(dir);
        Assert.Equal((Poolings.LastMeanMax, 2, true), (saved.Config.Pooling, saved.Config.Layers, saved.Config.Bidirectional));
        var evaluate = await CliRunner.RunAsync("evaluate", "--model", dir, "--data", TestData.NamesFolder, "--json");
        Assert.True(evaluate.ExitCode == 0, evaluate.Error);
        Assert.Equal(one.GetProperty("test_accuracy").GetDouble(), JsonDocument.Parse(evaluate.Out).RootElement.GetProperty("accuracy").GetDouble(), 12);
    }

    [Fact]
    public async Task A_model_description_without_pooling_and_layers_loads_as_last_state_and_one_layer()
    {
        var dir = Path.Combine(TestData.TempFolder(), "model");
        await TrainAsync(dir, "--workers", "1");
        var path = Path.Combine(dir, "model.json");
        var json = System.Text.Json.Nodes.JsonNode.Parse(File.ReadAllText(path))!.AsObject();
        Assert.Equal("last", json["pooling"]!.GetValue<string>());
        json.Remove("pooling");
        json.Remove("layers");
        File.WriteAllText(path, json.ToJsonString());
        var saved = ModelStore.Load(dir);
        Assert.Equal((Poolings.Last, 1), (saved.Config.Pooling, saved.Config.Layers));
    }

    [Fact]
    public async Task Predict_shows_the_top_three_languages_with_probabilities_in_order()
    {
        var dir = Path.Combine(TestData.TempFolder(), "model");
        await TrainAsync(dir);
        var result = await CliRunner.RunAsync("predict", "--model", dir, "--json", "Ślusàrski", "Nguyen");
        Assert.True(result.ExitCode == 0, result.Error);
        var names = JsonDocument.Parse(result.Out).RootElement.EnumerateArray().ToList();
        Assert.Equal(["Ślusàrski", "Nguyen"], names.Select(n => n.GetProperty("name").GetString()));
        foreach (var name in names)
        {
            var p = name.GetProperty("predictions").EnumerateArray().Select(x => (x.GetProperty("language").GetString()!, x.GetProperty("probability").GetDouble())).ToList();
            Assert.Equal(3, p.Count);
            Assert.True(p[0].Item2 >= p[1].Item2 && p[1].Item2 >= p[2].Item2);
            Assert.True(p.Sum(x => x.Item2) <= 1.0 + 1e-5);
            Assert.Equal(3, p.Select(x => x.Item1).Distinct().Count());
        }
        var text = await CliRunner.RunAsync("predict", "--model", dir, "Dovesky");
        Assert.StartsWith("> Dovesky", text.Out);
        Assert.Equal(4, text.Out.Trim().Split('\n').Length);
    }
}
