// A behavioural model of the Lattice ECP5 MULT18X18D for simulation, not synthesis (yosys reads
// its own black box). It covers the subset that hw's ecp5_multiply instantiates, and refuses
// anything else at elaboration: a multiply of A by B (each signed or unsigned per SIGNEDA / SIGNEDB),
// input, pipeline and output registers each off or on CLK0, enabled by CE0 and cleared by RST0
// synchronously (RESETMODE SYNC; RST0 wins over CE0), no C input, no shift-register sources
// (SOURCEA = SOURCEB = 0). SIGNEDA / SIGNEDB are read unregistered: ecp5_multiply ties them high.
// Only the pins ecp5_multiply connects are declared: CLK1-3, CE1-3, RST1-3 and the cascade pins are
// left off (a design that drives them does not build against this model).
/* verilator lint_off UNUSEDSIGNAL */
/* verilator lint_off UNUSEDPARAM */
module MULT18X18D (
    input A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0,
    input B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0,
    input C17, C16, C15, C14, C13, C12, C11, C10, C9, C8, C7, C6, C5, C4, C3, C2, C1, C0,
    input SIGNEDA, SIGNEDB, SOURCEA, SOURCEB,
    input CLK0, CE0, RST0,
    output P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0
);
    parameter REG_INPUTA_CLK = "NONE";
    parameter REG_INPUTA_CE = "CE0";
    parameter REG_INPUTA_RST = "RST0";
    parameter REG_INPUTB_CLK = "NONE";
    parameter REG_INPUTB_CE = "CE0";
    parameter REG_INPUTB_RST = "RST0";
    parameter REG_INPUTC_CLK = "NONE";
    parameter REG_INPUTC_CE = "CE0";
    parameter REG_INPUTC_RST = "RST0";
    parameter REG_PIPELINE_CLK = "NONE";
    parameter REG_PIPELINE_CE = "CE0";
    parameter REG_PIPELINE_RST = "RST0";
    parameter REG_OUTPUT_CLK = "NONE";
    parameter REG_OUTPUT_CE = "CE0";
    parameter REG_OUTPUT_RST = "RST0";
    parameter CLK0_DIV = "ENABLED";
    parameter CLK1_DIV = "ENABLED";
    parameter CLK2_DIV = "ENABLED";
    parameter CLK3_DIV = "ENABLED";
    parameter HIGHSPEED_CLK = "NONE";
    parameter GSR = "ENABLED";
    parameter CAS_MATCH_REG = "FALSE";
    parameter SOURCEB_MODE = "B_SHIFT";
    parameter MULT_BYPASS = "DISABLED";
    parameter RESETMODE = "SYNC";

    wire [17:0] a = {A17, A16, A15, A14, A13, A12, A11, A10, A9, A8, A7, A6, A5, A4, A3, A2, A1, A0};
    wire [17:0] b = {B17, B16, B15, B14, B13, B12, B11, B10, B9, B8, B7, B6, B5, B4, B3, B2, B1, B0};
    reg [17:0] a_reg = 18'd0, b_reg = 18'd0;
    reg [35:0] pipeline_reg = 36'd0, output_reg = 36'd0;
    wire [17:0] a_in = REG_INPUTA_CLK == "NONE" ? a : a_reg;
    wire [17:0] b_in = REG_INPUTB_CLK == "NONE" ? b : b_reg;
    // 19 x 19 signed holds both signed and unsigned 18-bit operands; the low 36 bits are the product
    wire signed [37:0] wide = $signed({SIGNEDA & a_in[17], a_in}) * $signed({SIGNEDB & b_in[17], b_in});
    wire [35:0] product = wide[35:0];
    wire [35:0] piped = REG_PIPELINE_CLK == "NONE" ? product : pipeline_reg;
    assign {P35, P34, P33, P32, P31, P30, P29, P28, P27, P26, P25, P24, P23, P22, P21, P20, P19, P18, P17, P16, P15, P14, P13, P12, P11, P10, P9, P8, P7, P6, P5, P4, P3, P2, P1, P0} = REG_OUTPUT_CLK == "NONE" ? piped : output_reg;

    always @(posedge CLK0) begin
        if (RST0) begin
            a_reg <= 18'd0; b_reg <= 18'd0; pipeline_reg <= 36'd0; output_reg <= 36'd0;
        end else if (CE0) begin
            a_reg <= a; b_reg <= b; pipeline_reg <= product; output_reg <= piped;
        end
    end

    initial begin
        if ((REG_INPUTA_CLK != "NONE" && REG_INPUTA_CLK != "CLK0") || (REG_INPUTB_CLK != "NONE" && REG_INPUTB_CLK != "CLK0")
            || (REG_PIPELINE_CLK != "NONE" && REG_PIPELINE_CLK != "CLK0") || (REG_OUTPUT_CLK != "NONE" && REG_OUTPUT_CLK != "CLK0")
            || REG_INPUTC_CLK != "NONE")
            $fatal(1, "MULT18X18D model: registers are modelled off or on CLK0 (no C input)");
        if (REG_INPUTA_CE != "CE0" || REG_INPUTB_CE != "CE0" || REG_PIPELINE_CE != "CE0" || REG_OUTPUT_CE != "CE0"
            || REG_INPUTA_RST != "RST0" || REG_INPUTB_RST != "RST0" || REG_PIPELINE_RST != "RST0" || REG_OUTPUT_RST != "RST0")
            $fatal(1, "MULT18X18D model: registers are modelled on CE0 and RST0");
        if (RESETMODE != "SYNC" || MULT_BYPASS != "DISABLED" || CAS_MATCH_REG != "FALSE")
            $fatal(1, "MULT18X18D model: RESETMODE SYNC, MULT_BYPASS DISABLED and CAS_MATCH_REG FALSE only");
    end
endmodule
