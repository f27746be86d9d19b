/** SVG files imported as their text: the lab bundle (webpack) and the agent (esbuild) both do. */
declare module '*.svg' {
  const value: string;
  export default value;
}
