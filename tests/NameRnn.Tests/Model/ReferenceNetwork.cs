using NameRnn.Model.Data;
using NameRnn.Model.Network;

namespace NameRnn.Tests.Model;

/// <summary>
/// An independent, one-name-at-a-time implementation of the three cells in plain C# (double
/// precision, explicit one-hot products), read straight from the formulas, to check the batched
/// TorchSharp module against.
/// </summary>
public static class ReferenceNetwork
{
    public static double[] Logits(ModelConfig config, float[] flat, string name)
    {
        var p = Unflatten(config, flat);
        // The first layer's inputs: explicit one-hot vectors, or their product with the embedding.
        var inputs = Alphabet.Encode(name).Select(letter =>
        {
            var oneHot = new double[config.Inputs];
            oneHot[letter] = 1;
            return config.Embedding > 0 ? MatVec(p["E"], oneHot) : oneHot;
        }).ToList();
        for (var layer = 0; ; layer++)
        {
            var suffix = layer == 0 ? "" : $"_l{layer}";
            var forwards = States(config, p, inputs, suffix);
            var backwards = config.Bidirectional ? States(config, p, Enumerable.Reverse(inputs).ToList(), suffix + "_reverse") : null;
            if (layer == config.Layers - 1)
            {
                var features = Features(config, forwards);
                if (backwards is not null) features = [.. features, .. Features(config, backwards)];
                return Add(MatVec(p["V"], features), p["c"][0]);
            }
            // The next layer reads, at position i, the forward state after letter i and the backward
            // state after reading back to letter i.
            inputs = Enumerable.Range(0, inputs.Count)
                .Select(i => backwards is null ? forwards[i] : [.. forwards[i], .. backwards[inputs.Count - 1 - i]])
                .ToList();
        }
    }

    /// <summary>The last state, or the last state followed by the element-wise mean and maximum of all the states.</summary>
    private static double[] Features(ModelConfig config, List<double[]> states)
    {
        if (config.Pooling == Poolings.Last) return states[^1];
        var h = config.Hidden;
        var mean = Enumerable.Range(0, h).Select(i => states.Average(s => s[i])).ToArray();
        var max = Enumerable.Range(0, h).Select(i => states.Max(s => s[i])).ToArray();
        return [.. states[^1], .. mean, .. max];
    }

    /// <summary>The hidden state after every letter, in reading order.</summary>
    private static List<double[]> States(ModelConfig config, Dictionary<string, double[][]> all, List<double[]> inputs, string suffix)
    {
        var p = new Dictionary<string, double[][]>();
        foreach (var key in new[] { "U", "W", "b", "W_ih", "W_hh", "b_ih", "b_hh" }.Where(k => all.ContainsKey(k + suffix)))
            p[key] = all[key + suffix];
        var h = config.Hidden;
        var state = new double[h];
        var cell = new double[h];
        var states = new List<double[]>();
        foreach (var x in inputs)
        {
            switch (config.Cell)
            {
                case Cells.Rnn:
                {
                    var u = MatVec(p["U"], x);
                    var w = MatVec(p["W"], state);
                    state = Enumerable.Range(0, h).Select(i => Math.Tanh(u[i] + w[i] + p["b"][0][i])).ToArray();
                    break;
                }
                case Cells.Gru:
                {
                    var gi = Add(MatVec(p["W_ih"], x), p["b_ih"][0]);
                    var gh = Add(MatVec(p["W_hh"], state), p["b_hh"][0]);
                    var next = new double[h];
                    for (var i = 0; i < h; i++)
                    {
                        var r = Sigmoid(gi[i] + gh[i]);
                        var z = Sigmoid(gi[h + i] + gh[h + i]);
                        var n = Math.Tanh(gi[2 * h + i] + r * gh[2 * h + i]);
                        next[i] = (1 - z) * n + z * state[i];
                    }
                    state = next;
                    break;
                }
                case Cells.Lstm:
                {
                    var g = Add(Add(MatVec(p["W_ih"], x), p["b_ih"][0]), Add(MatVec(p["W_hh"], state), p["b_hh"][0]));
                    var next = new double[h];
                    for (var i = 0; i < h; i++)
                    {
                        var ig = Sigmoid(g[i]);
                        var fg = Sigmoid(g[h + i]);
                        var gg = Math.Tanh(g[2 * h + i]);
                        var og = Sigmoid(g[3 * h + i]);
                        cell[i] = fg * cell[i] + ig * gg;
                        next[i] = og * Math.Tanh(cell[i]);
                    }
                    state = next;
                    break;
                }
            }
            states.Add(state);
        }
        return states;
    }

    private static Dictionary<string, double[][]> Unflatten(ModelConfig config, float[] flat)
    {
        var result = new Dictionary<string, double[][]>();
        var offset = 0;
        foreach (var (name, shape) in config.ParameterShapes())
        {
            var rows = shape.Length == 2 ? (int)shape[0] : 1;
            var cols = (int)shape[^1];
            result[name] = Enumerable.Range(0, rows).Select(r => flat.Skip(offset + r * cols).Take(cols).Select(v => (double)v).ToArray()).ToArray();
            offset += rows * cols;
        }
        return result;
    }

    private static double[] MatVec(double[][] m, double[] v) => m.Select(row => row.Zip(v, (a, b) => a * b).Sum()).ToArray();
    private static double[] Add(double[] a, double[] b) => a.Zip(b, (x, y) => x + y).ToArray();
    private static double Sigmoid(double x) => 1 / (1 + Math.Exp(-x));
}
