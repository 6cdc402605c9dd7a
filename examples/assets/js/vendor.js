// A tiny "vendor" library: the first half of the bundle.
var greet = function (name) {
  return "hello, " + name
}
