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
        var letters = Alphabet.Encode(name);
        var state = LastState(config, p, letters, "");
        if (config.Bidirectional)
            state = [.. state, .. LastState(config, p, letters.Reverse().ToArray(), "_reverse")];
        return Add(MatVec(p["V"], state), p["c"][0]);
    }

    private static double[] LastState(ModelConfig config, Dictionary<string, double[][]> all, int[] letters, string suffix)
    {
        var p = all.Where(kv => !kv.Key.EndsWith("_reverse", StringComparison.Ordinal)).ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var key in all.Keys.Where(k => suffix.Length > 0 && k.EndsWith(suffix, StringComparison.Ordinal)))
            p[key[..^suffix.Length]] = all[key];
        var h = config.Hidden;
        var state = new double[h];
        var cell = new double[h];
        foreach (var letter in letters)
        {
            var oneHot = new double[config.Inputs];
            oneHot[letter] = 1;
            var x = config.Embedding > 0 ? MatVec(p["E"], oneHot) : oneHot;
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
        }
        return state;
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
