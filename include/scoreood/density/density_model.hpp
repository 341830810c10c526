/** @file density_model.hpp
 *  @brief The DensityModel concept: what ScoreOOD needs from a density policy.
 *
 *  A model is fitted on the training images' normality vectors (N x D rows)
 *  and returns one log-likelihood per row; the OOD score is -log_likelihood.
 *  Every model standardises its input internally (per-feature mean and
 *  population std, fitted once in fit() and saved with the model), and its
 *  log_likelihood is the log-density of the STANDARDISED vector: it omits the
 *  constant -sum(log scale) Jacobian, which shifts every score equally and so
 *  changes no ranking-based metric. */
#pragma once
#include <scoreood/core/serialization.hpp>
#include <scoreood/core/tensor.hpp>

#include <concepts>
#include <string_view>

namespace scoreood::density {

/// @tparam M a density policy. It must provide:
///  - `static constexpr std::string_view name` ("gmm", "gaussian", "knn"), also its tag in files;
///  - `void fit(const Matrix<double>& X)`: N x D rows, N >= 1 finite values (model-specific minimum);
///  - `Vector<double> log_likelihood(const Matrix<double>& X) const`: one value per row, higher = more
///    typical (a score for models that are not densities, like Knn);
///  - `void save(io::ByteWriter&) const` and `void load(io::ByteReader&)`: all state including the scaler;
///    load validates sizes and throws FormatError on bad data.
template <class M>
concept DensityModel = std::default_initializable<M> &&
    requires(M m, const M cm, const Matrix<double>& X, io::ByteWriter& w, io::ByteReader& r) {
      { M::name } -> std::convertible_to<std::string_view>;
      m.fit(X);
      { cm.log_likelihood(X) } -> std::same_as<Vector<double>>;
      cm.save(w);
      m.load(r);
    };

}  // namespace scoreood::density
