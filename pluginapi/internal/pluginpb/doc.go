// Package pluginpb holds the generated code of the backend plugin protocol
// kvhost.plugin.v1 (plugin.proto beside it). Only package pluginapi uses
// it; backends implement pluginapi.Backend and never see these types.
package pluginpb
